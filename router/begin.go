package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/replica"
)

// commitLSNSQL ends a transaction and, in the same round trip, reads the
// WAL insert position, which is past the commit record once COMMIT is done.
const commitLSNSQL = "COMMIT; SELECT pg_current_wal_insert_lsn()::text"

// BeginTx starts a transaction on the shard and returns it; the caller
// ends it with Commit or Rollback (a deferred Rollback after Commit is
// harmless). Inside it, Invalidate queues cache invalidations that take
// effect at commit; under a session, Commit records the commit's position
// in the same round trip.
//
// A read-only transaction (opts.AccessMode pgx.ReadOnly) that is not
// serializable runs like a read: on a replica within the lag bound and at
// or past the session's position, else on the primary. (PostgreSQL runs no
// serializable transaction on a replica.) Every other transaction runs on
// the primary.
func (t Target) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	if err := t.usable(ctx); err != nil {
		return nil, err
	}
	readOnly := opts.AccessMode == pgx.ReadOnly && opts.IsoLevel != pgx.Serializable
	o := &owned{write: !readOnly, began: time.Now()}
	var err error
	if readOnly {
		o.read = t.readOptions(ctx)
		o.conn, err = t.s.set.ReadConn(ctx, o.read)
	} else if err = t.leaseErr(ctx); err == nil {
		o.conn, err = t.s.set.WriteConn(ctx)
	}
	if err != nil {
		o.conn = nil
		o.trace(ctx, t, 0, err)
		return nil, t.fail(ctx, err)
	}
	inner, err := o.conn.BeginTx(ctx, opts)
	if err != nil {
		err = o.conn.Failed(ctx, err)
		o.trace(ctx, t, 0, err)
		o.conn.Release()
		return nil, t.fail(ctx, err)
	}
	if info := readInfoFrom(ctx); info != nil && readOnly {
		info.set(t.s.name, o.conn.Served())
	}
	return &routerTx{Tx: inner, t: t, keys: new([]string), own: o}, nil
}

// owned is the connection of a transaction begun by BeginTx.
type owned struct {
	conn  *replica.Conn
	write bool
	done  bool
	began time.Time
	read  replica.ReadOptions // a read-only transaction's
}

// errRolledBack is what the Tracer is told of a write transaction that its
// caller rolled back.
var errRolledBack = errors.New("router: transaction rolled back")

// trace reports the transaction's end to the Tracer: a write's outcome
// (err as the caller sees it; nil or ErrCommitLSN for a commit), or a
// read-only transaction as one read.
func (o *owned) trace(ctx context.Context, t Target, lsn replica.LSN, err error) {
	if o.write {
		t.s.set.TraceWrite(ctx, "tx", o.conn, o.began, lsn, err)
		return
	}
	t.s.set.TraceRead(ctx, o.conn, o.read, o.began, err)
}

// commit ends tx's owned transaction; see BeginTx.
func (tx *routerTx) commitOwned(ctx context.Context) error {
	o := tx.own
	if o.done {
		return pgx.ErrTxClosed
	}
	o.done = true
	defer o.conn.Release()
	t := tx.t
	if !o.write {
		err := tx.Tx.Commit(ctx)
		if err != nil {
			err = o.conn.Failed(ctx, err)
		}
		o.trace(ctx, t, 0, err)
		return t.fail(ctx, err)
	}
	results, err := o.conn.Conn.Conn().PgConn().Exec(ctx, commitLSNSQL).ReadAll()
	var lsn replica.LSN
	switch {
	case err != nil && len(results) == 2:
		err = fmt.Errorf("%w: %w", replica.ErrCommitLSN, err)
	case err != nil:
		err = o.conn.Failed(ctx, err)
		o.trace(ctx, t, 0, err)
		return t.fail(ctx, err)
	case results[0].CommandTag.String() != "COMMIT":
		// The transaction had failed; PostgreSQL answers COMMIT with ROLLBACK.
		o.trace(ctx, t, 0, pgx.ErrTxCommitRollback)
		return t.fail(ctx, pgx.ErrTxCommitRollback)
	case len(results[1].Rows) != 1 || len(results[1].Rows[0]) != 1:
		err = replica.ErrCommitLSN
	default:
		lsn, err = replica.ParseLSN(string(results[1].Rows[0][0]))
		if err != nil {
			err = fmt.Errorf("%w: %w", replica.ErrCommitLSN, err)
		}
	}
	o.conn.Wrote()
	tx.committed(ctx, lsn)
	o.trace(ctx, t, lsn, err)
	return t.fail(ctx, err)
}

// committed does what a commit means to the router: the invalidated keys
// leave this process's caches, later loads read past the commit, and the
// session records its position.
func (tx *routerTx) committed(ctx context.Context, lsn replica.LSN) {
	t := tx.t
	if len(*tx.keys) > 0 {
		if lsn != 0 {
			t.s.raiseFloor(lsn)
		}
		t.r.dropLocal(*tx.keys)
	}
	if sess := SessionFrom(ctx); sess != nil {
		sess.observe(t.s.name, lsn)
	}
}

func (tx *routerTx) rollbackOwned(ctx context.Context) error {
	o := tx.own
	if o.done {
		return pgx.ErrTxClosed
	}
	o.done = true
	defer o.conn.Release()
	err := tx.Tx.Rollback(ctx)
	if err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		err = o.conn.Failed(ctx, err)
	} else {
		err = nil
	}
	switch {
	case o.write && err == nil:
		o.trace(ctx, tx.t, 0, errRolledBack)
	default:
		o.trace(ctx, tx.t, 0, err)
	}
	return tx.t.fail(ctx, err)
}
