package reshard

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/topology"
)

// VerifyOptions tune Verify. The zero value waits 30 s for the stream and
// names at most 10 differences.
type VerifyOptions struct {
	// Timeout bounds the wait for the stream to pause and to reach the
	// position compared. Default 30 s.
	Timeout time.Duration
	// MaxDiffs is how many differences are named. Default 10.
	MaxDiffs int
}

// Diff is one difference between the source and a target.
type Diff struct {
	Table  string `json:"table"`
	Target string `json:"target"`
	// Key is the primary key of the first row that differs, as
	// PostgreSQL prints a row: (42,7).
	Key     string `json:"key"`
	Problem string `json:"problem"`
}

// TableCount is a table's rows on the source (those of the moving range;
// for a reference table, all) and on each target.
type TableCount struct {
	Table   string           `json:"table"`
	Source  map[string]int64 `json:"source"` // by target: the rows it should have
	Targets map[string]int64 `json:"targets"`
}

// Report is what Verify found.
type Report struct {
	// Position is the source position compared: the targets had applied
	// everything committed before it, and nothing after.
	Position string       `json:"position"`
	Tables   []TableCount `json:"tables"`
	Diffs    []Diff       `json:"diffs,omitempty"`
	// More counts the differences past MaxDiffs.
	More int `json:"more,omitempty"`
}

// Clean reports whether the targets hold exactly the source's rows.
func (r *Report) Clean() bool { return len(r.Diffs) == 0 }

// Verify compares the source's rows with the targets' at one position:
// it pauses the stream (Run must be running) at a transaction boundary,
// takes a snapshot of the source at a new position, lets the stream apply
// up to it and pause again, and then reads every declared table in
// primary-key order on both sides, comparing each row's md5 and counting
// rows per target; a difference names the table, the target and the
// first key that differs. The stream goes on when Verify returns.
func (m *Manager) Verify(ctx context.Context, name string, o VerifyOptions) (*Report, error) {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxDiffs <= 0 {
		o.MaxDiffs = 10
	}
	expires := time.Now().Add(o.Timeout + 30*time.Minute)
	st, err := m.update(ctx, name, func(st *State) error {
		if st.Phase != PhaseStreaming {
			return fmt.Errorf("%w: verify in phase %s (it compares while the stream runs, before the switch)", ErrPhase, st.Phase)
		}
		st.Hold, st.HoldAck, st.HoldExpires = holdPause, false, expires
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		_, _ = m.update(context.WithoutCancel(ctx), name, func(st *State) error {
			st.Hold, st.HoldAck, st.HoldExpires = "", false, time.Time{}
			return nil
		})
	}()
	if err := m.waitHold(ctx, name, o.Timeout); err != nil {
		return nil, err
	}
	// The stream is paused: a snapshot taken now is past what it applied.
	repl, err := m.replicationConn(ctx, st)
	if err != nil {
		return nil, err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	slot, err := pglogrepl.CreateReplicationSlot(ctx, repl, "pgshard_verify_"+st.Name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return nil, fmt.Errorf("reshard: source %s: snapshot: %w", st.Source.Shard, err)
	}
	src, err := m.source(ctx, st)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	if _, err := src.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return nil, err
	}
	if _, err := src.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(slot.SnapshotName)); err != nil {
		return nil, err
	}
	if _, err := m.update(ctx, name, func(st *State) error {
		st.Hold, st.HoldAck = slot.ConsistentPoint, false
		return nil
	}); err != nil {
		return nil, err
	}
	if err := m.waitHold(ctx, name, o.Timeout); err != nil {
		return nil, err
	}
	rep := &Report{Position: slot.ConsistentPoint}
	targets := make([]*pgx.Conn, len(st.Targets))
	defer func() {
		for _, c := range targets {
			if c != nil {
				c.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	for i, t := range st.Targets {
		if targets[i], err = m.target(ctx, t); err != nil {
			return nil, err
		}
	}
	rt, err := newRouter(st.Targets)
	if err != nil {
		return nil, err
	}
	for _, t := range st.Tables {
		if err := compareTable(ctx, st, t, rt, src, targets, rep, o.MaxDiffs); err != nil {
			return nil, fmt.Errorf("reshard: verify %s: %w", t.Name, err)
		}
	}
	return rep, nil
}

// waitHold waits until the stream acknowledges the workflow's hold.
func (m *Manager) waitHold(ctx context.Context, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, _, err := m.load(ctx, name)
		if err != nil {
			return err
		}
		if st.HoldAck {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reshard: verify: the stream did not pause within %v (is 'pgshard reshard run %s' running?)", timeout, name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// compareTable reads the table on the source and on every target in
// primary-key order and compares, target by target, the source rows it
// owns with its rows.
func compareTable(ctx context.Context, st *State, t topology.Table, rt *router, src *pgx.Conn, targets []*pgx.Conn, rep *Report, maxDiffs int) error {
	var pk []string
	err := src.QueryRow(ctx, `SELECT array_agg(quote_ident(a.attname) ORDER BY k.ord) FROM pg_index i
		CROSS JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = to_regclass($1) AND i.indisprimary`, t.Name).Scan(&pk)
	if err != nil {
		return err
	}
	key := "NULL"
	if !t.Reference {
		key = pgx.Identifier{t.Key}.Sanitize() + "::text"
	}
	order := strings.Join(pk, ", ")
	q := fmt.Sprintf("SELECT ROW(%s)::text, %s, md5(t::text) FROM %s t ORDER BY %s", order, key, quoteTable(t.Name), order)
	count := TableCount{Table: t.Name, Source: map[string]int64{}, Targets: map[string]int64{}}
	type cursor struct {
		rows pgx.Rows
		done bool
	}
	curs := make([]*cursor, len(targets))
	for i, c := range targets {
		rows, err := c.Query(ctx, q)
		if err != nil {
			return fmt.Errorf("target %s: %w", st.Targets[i].Name, err)
		}
		curs[i] = &cursor{rows: rows}
		defer rows.Close()
	}
	differs := make([]bool, len(targets)) // one Diff per target and table
	diff := func(i int, d Diff) {
		if differs[i] {
			return
		}
		differs[i] = true
		d.Table, d.Target = t.Name, st.Targets[i].Name
		if len(rep.Diffs) < maxDiffs {
			rep.Diffs = append(rep.Diffs, d)
		} else {
			rep.More++
		}
	}
	next := func(i int) (pkText, sum string, ok bool, err error) {
		c := curs[i]
		if c.done || !c.rows.Next() {
			c.done = true
			return "", "", false, c.rows.Err()
		}
		var k *string
		err = c.rows.Scan(&pkText, &k, &sum)
		if err == nil {
			count.Targets[st.Targets[i].Name]++
		}
		return pkText, sum, err == nil, err
	}
	rows, err := src.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	all := make([]int, len(targets))
	for i := range all {
		all[i] = i
	}
	for rows.Next() {
		var pkText, sum string
		var k *string
		if err := rows.Scan(&pkText, &k, &sum); err != nil {
			rows.Close()
			return err
		}
		to := all
		if !t.Reference {
			if k == nil {
				continue
			}
			id, err := hashText(t, []byte(*k))
			if err != nil {
				rows.Close()
				return err
			}
			i := rt.target(id)
			if i < 0 {
				continue
			}
			to = []int{i}
		}
		for _, i := range to {
			count.Source[st.Targets[i].Name]++
			if differs[i] {
				continue
			}
			gotPK, gotSum, ok, err := next(i)
			switch {
			case err != nil:
				rows.Close()
				return fmt.Errorf("target %s: %w", st.Targets[i].Name, err)
			case !ok:
				diff(i, Diff{Key: pkText, Problem: "missing on the target (the target has no more rows)"})
			case gotPK != pkText:
				diff(i, Diff{Key: min(gotPK, pkText), Problem: fmt.Sprintf("the source's next row is %s, the target's %s", pkText, gotPK)})
			case gotSum != sum:
				diff(i, Diff{Key: pkText, Problem: "the row differs"})
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	for i := range curs {
		for {
			gotPK, _, ok, err := next(i)
			if err != nil {
				return fmt.Errorf("target %s: %w", st.Targets[i].Name, err)
			}
			if !ok {
				break
			}
			if !differs[i] {
				diff(i, Diff{Key: gotPK, Problem: "on the target only"})
			}
		}
	}
	for i, tg := range st.Targets {
		if count.Source[tg.Name] != count.Targets[tg.Name] && !differs[i] {
			diff(i, Diff{Problem: fmt.Sprintf("%d rows on the source, %d on the target", count.Source[tg.Name], count.Targets[tg.Name])})
		}
	}
	rep.Tables = append(rep.Tables, count)
	return nil
}
