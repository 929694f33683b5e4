package reshard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/topology"
)

// markerPrefix is the prefix of the logical decoding message that a
// switch (or verify) writes on the source: the applier records its
// position on every target, so that waiting for it tells when the targets
// have everything the source had committed before.
const markerPrefix = "pgshard.reshard"

// appliedPrefix starts every transaction an applier commits, with the
// workflow's name: a stream of the same workflow skips the transaction,
// so that the forward and the reverse streams never send each other's
// changes back.
const appliedPrefix = "pgshard.reshard.applied"

// applier applies one source transaction at a time on the targets, each
// target's part in one transaction that also records the position. It is
// not safe for concurrent use.
type applier struct {
	posKey  string // the row of pgshard.reshard_apply it keeps
	mark    string // the content of the markers it records (the workflow's name)
	rt      *router
	targets []*targetConn
	tables  map[string]*tableInfo // by schema.name, as the stream names them
	rels    map[uint32]*relation

	// The transaction being applied.
	inTx     bool
	finalLSN pglogrepl.LSN
	marker   bool
	touched  bool // something of it was applied
	echo     bool // it was made by this workflow's other stream: skipped

	// Source transactions applied but not yet committed on the targets:
	// they are committed together, with the last one's end as position.
	pending    bool
	pendingEnd pglogrepl.LSN
	commitTime time.Time
	groupTxns  int
	groupStart time.Time
}

// Group commits: at most this many source transactions, or this long.
const (
	groupMax  = 500
	groupWait = 20 * time.Millisecond
)

type targetConn struct {
	name    string
	conn    *pgx.Conn
	applied pglogrepl.LSN // what pgshard.reshard_apply says
	// batch holds the pending group's statements: sent at once, with one
	// Sync, they run in one transaction with the position they record.
	batch *pgconn.Batch
	open  bool
}

// tableInfo is a declared table as the targets have it.
type tableInfo struct {
	table   topology.Table
	quoted  string
	columns []string // in order, as pgoutput sends them
	types   []uint32
	pk      []string
}

// relation is a table as the stream described it.
type relation struct {
	info   *tableInfo
	key    int   // index of the key column; -1 for a reference table
	pk     []int // indexes of the primary key's columns
	quoted []string
}

// loadTables reads each declared table's columns and primary key on a
// target, the shape the stream's relations must keep.
func loadTables(ctx context.Context, c *pgx.Conn, tables []topology.Table) (map[string]*tableInfo, error) {
	out := map[string]*tableInfo{}
	for _, t := range tables {
		ti := &tableInfo{table: t, quoted: quoteTable(t.Name)}
		var ns, rel string
		err := c.QueryRow(ctx, `SELECT n.nspname, c.relname,
			(SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attgenerated = ''),
			(SELECT array_agg(atttypid::int8 ORDER BY attnum) FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attgenerated = ''),
			(SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = c.oid AND i.indisprimary)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`, t.Name).
			Scan(&ns, &rel, &ti.columns, &ti.types, &ti.pk)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t.Name, err)
		}
		out[ns+"."+rel] = ti
	}
	return out, nil
}

// relation records the stream's description of a table, and stops the
// workflow if its columns are no longer those of the targets.
func (a *applier) relation(msg *pglogrepl.RelationMessage) error {
	ti, ok := a.tables[msg.Namespace+"."+msg.RelationName]
	if !ok {
		return stopf(ErrSchemaChanged, "the stream carries table %s.%s, which is not declared", msg.Namespace, msg.RelationName)
	}
	var cols []string
	var types []uint32
	for _, c := range msg.Columns {
		cols = append(cols, c.Name)
		types = append(types, c.DataType)
	}
	same := slices.Equal(cols, ti.columns)
	for i := 0; same && i < len(types); i++ {
		if types[i] < 16384 && ti.types[i] < 16384 && types[i] != ti.types[i] {
			same = false
		}
	}
	if !same {
		return stopf(ErrSchemaChanged, "table %s changed on the source during the move: its columns are now (%s), the targets have (%s); "+
			"make the same change on the targets and run the workflow again, or cancel it",
			ti.table.Name, strings.Join(cols, ", "), strings.Join(ti.columns, ", "))
	}
	r := &relation{info: ti, key: -1}
	for _, c := range cols {
		r.quoted = append(r.quoted, pgx.Identifier{c}.Sanitize())
	}
	if !ti.table.Reference {
		r.key = slices.Index(cols, ti.table.Key)
	}
	for _, p := range ti.pk {
		r.pk = append(r.pk, slices.Index(cols, p))
	}
	a.rels[msg.RelationID] = r
	return nil
}

func (a *applier) rel(id uint32) (*relation, error) {
	r, ok := a.rels[id]
	if !ok {
		return nil, fmt.Errorf("reshard: the stream used relation %d before describing it", id)
	}
	return r, nil
}

// atBoundary reports whether the stream is between transactions as far
// as the targets know: nothing of a transaction in progress is applied.
func (a *applier) atBoundary() bool { return !a.inTx || !a.touched }

// groupDue says whether the pending group should be committed now.
func (a *applier) groupDue() bool {
	return a.pending && (a.groupTxns >= groupMax || time.Since(a.groupStart) >= groupWait)
}

func (a *applier) begin(msg *pglogrepl.BeginMessage) {
	a.inTx, a.finalLSN, a.marker, a.touched, a.echo = true, msg.FinalLSN, false, false, false
}

// owners returns the targets a row goes to: the one that owns its key, or
// all for a reference table; none for a key outside the moving range.
func (a *applier) owners(r *relation, tuple *pglogrepl.TupleData) ([]int, error) {
	if r.key < 0 {
		all := make([]int, len(a.targets))
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	if tuple == nil || r.key >= len(tuple.Columns) || tuple.Columns[r.key].DataType != 't' {
		return nil, fmt.Errorf("reshard: table %s: a change without its key %s", r.info.table.Name, r.info.table.Key)
	}
	id, err := hashText(r.info.table, tuple.Columns[r.key].Data)
	if err != nil {
		return nil, err
	}
	if i := a.rt.target(id); i >= 0 {
		return []int{i}, nil
	}
	return nil, nil
}

// exec queues sql for target i in the pending group; false when the
// target already has this transaction (it is skipped).
func (a *applier) exec(i int, sql string, args [][]byte) bool {
	t := a.targets[i]
	if a.finalLSN < t.applied || a.echo {
		return false
	}
	a.open(t)
	a.touched = true
	t.batch.ExecParams(sql, args, nil, nil, nil)
	return true
}

// open starts target t's part of the pending group: its first statement
// marks the transaction as this workflow's, for the streams to skip.
func (a *applier) open(t *targetConn) {
	if t.open {
		return
	}
	t.batch, t.open = &pgconn.Batch{}, true
	t.batch.ExecParams(`SELECT pg_logical_emit_message(true, $1::text, $2::text)`, [][]byte{[]byte(appliedPrefix), []byte(a.mark)}, nil, nil, nil)
}

// expectOne wraps an UPDATE or DELETE so that it fails, and with it the
// group's transaction, unless it found exactly one row.
func expectOne(sql, what string) string {
	return "WITH c AS (" + sql + " RETURNING 1) SELECT pgshard.reshard_expect(count(*), " + quoteLiteral(what) + ") FROM c"
}

func values(tuple *pglogrepl.TupleData, idx []int) [][]byte {
	out := make([][]byte, len(idx))
	for j, i := range idx {
		if c := tuple.Columns[i]; c.DataType == 't' {
			out[j] = append([]byte{}, c.Data...) // the stream reuses its buffer
		}
	}
	return out
}

func (a *applier) insert(ctx context.Context, msg *pglogrepl.InsertMessage) error {
	r, err := a.rel(msg.RelationID)
	if err != nil {
		return err
	}
	to, err := a.owners(r, msg.Tuple)
	if err != nil {
		return err
	}
	return a.insertRow(ctx, r, msg.Tuple, to)
}

func (a *applier) insertRow(ctx context.Context, r *relation, tuple *pglogrepl.TupleData, to []int) error {
	var cols, params []string
	var idx []int
	for i, c := range tuple.Columns {
		if c.DataType == 'u' {
			return fmt.Errorf("reshard: table %s: a row moves between targets with an unchanged TOAST value in %s; its value is not in the stream",
				r.info.table.Name, r.info.columns[i])
		}
		cols = append(cols, r.quoted[i])
		params = append(params, "$"+strconv.Itoa(len(params)+1))
		idx = append(idx, i)
	}
	sql := "INSERT INTO " + r.info.quoted + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(params, ", ") + ")"
	args := values(tuple, idx)
	for _, i := range to {
		a.exec(i, sql, args)
	}
	return nil
}

// where builds "pk1 = $n AND ..." for the primary key's values in tuple.
func (r *relation) where(first int) string {
	var conds []string
	for j, i := range r.pk {
		conds = append(conds, r.quoted[i]+" = $"+strconv.Itoa(first+j))
	}
	return strings.Join(conds, " AND ")
}

func (a *applier) update(ctx context.Context, msg *pglogrepl.UpdateMessage) error {
	r, err := a.rel(msg.RelationID)
	if err != nil {
		return err
	}
	to, err := a.owners(r, msg.NewTuple)
	if err != nil {
		return err
	}
	old := msg.NewTuple
	from := to
	if msg.OldTuple != nil {
		old = msg.OldTuple
		if from, err = a.owners(r, msg.OldTuple); err != nil {
			return err
		}
	}
	if r.key >= 0 && !slices.Equal(from, to) {
		// The key changed and the row changes owner: delete it there,
		// insert it here.
		if err := a.deleteRow(ctx, r, old, from); err != nil {
			return err
		}
		return a.insertRow(ctx, r, msg.NewTuple, to)
	}
	var sets []string
	var idx []int
	for i, c := range msg.NewTuple.Columns {
		if c.DataType == 'u' {
			continue // unchanged TOAST: the target has it
		}
		idx = append(idx, i)
		sets = append(sets, r.quoted[i]+" = $"+strconv.Itoa(len(idx)))
	}
	sql := expectOne("UPDATE "+r.info.quoted+" SET "+strings.Join(sets, ", ")+" WHERE "+r.where(len(idx)+1),
		"an update of "+r.info.table.Name)
	args := append(values(msg.NewTuple, idx), values(old, r.pk)...)
	for _, i := range to {
		a.exec(i, sql, args)
	}
	return nil
}

func (a *applier) delete(ctx context.Context, msg *pglogrepl.DeleteMessage) error {
	r, err := a.rel(msg.RelationID)
	if err != nil {
		return err
	}
	to, err := a.owners(r, msg.OldTuple)
	if err != nil {
		return err
	}
	return a.deleteRow(ctx, r, msg.OldTuple, to)
}

func (a *applier) deleteRow(ctx context.Context, r *relation, old *pglogrepl.TupleData, to []int) error {
	sql := expectOne("DELETE FROM "+r.info.quoted+" WHERE "+r.where(1), "a delete from "+r.info.table.Name)
	args := values(old, r.pk)
	for _, i := range to {
		a.exec(i, sql, args)
	}
	return nil
}

// message notes a marker for this workflow: its transaction's position
// is recorded on every target.
func (a *applier) message(msg *pglogrepl.LogicalDecodingMessage) {
	switch {
	case !a.inTx || string(msg.Content) != a.mark:
	case msg.Prefix == markerPrefix:
		a.marker = true
	case msg.Prefix == appliedPrefix && !a.touched:
		a.echo = true
	}
}

// commit ends a source transaction: its changes join the pending group
// (every target's, for a marker). It returns the transaction's end when
// nothing is pending: the targets have all of it.
func (a *applier) commit(ctx context.Context, msg *pglogrepl.CommitMessage) (pglogrepl.LSN, error) {
	a.inTx, a.touched = false, false
	if a.marker {
		a.marker = false
		for _, t := range a.targets {
			if !t.open && a.finalLSN >= t.applied {
				a.open(t)
			}
		}
	}
	open := a.pending
	for _, t := range a.targets {
		open = open || t.open
	}
	if !open {
		return msg.TransactionEndLSN, nil
	}
	if !a.pending {
		a.pending, a.groupStart, a.groupTxns = true, time.Now(), 0
	}
	a.pendingEnd, a.commitTime = msg.TransactionEndLSN, msg.CommitTime
	a.groupTxns++
	return 0, nil
}

// flush commits the pending group on every target, recording its end as
// each one's position, and returns that end (0 when nothing was pending).
// It must be called at a boundary.
func (a *applier) flush(ctx context.Context) (pglogrepl.LSN, error) {
	if !a.pending {
		return 0, nil
	}
	at := []byte(a.commitTime.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))
	for _, t := range a.targets {
		if !t.open {
			continue
		}
		t.batch.ExecParams(`INSERT INTO pgshard.reshard_apply (workflow, lsn, commit_time) VALUES ($1, $2, $3)
			ON CONFLICT (workflow) DO UPDATE SET lsn = $2, commit_time = $3, updated_at = clock_timestamp()`,
			[][]byte{[]byte(a.posKey), []byte(a.pendingEnd.String()), at}, nil, nil, nil)
		results, err := t.conn.PgConn().ExecBatch(ctx, t.batch).ReadAll()
		for _, r := range results {
			if err == nil {
				err = r.Err
			}
		}
		t.batch, t.open = nil, false
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "PGS02" {
			return 0, stop(fmt.Errorf("reshard: target %s: %w", t.name, err))
		}
		if err != nil {
			return 0, fmt.Errorf("reshard: target %s: apply: %w", t.name, err)
		}
		t.applied = a.pendingEnd
	}
	a.pending = false
	return a.pendingEnd, nil
}
