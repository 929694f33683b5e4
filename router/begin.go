package router

import (
	"context"
	"errors"
	"fmt"

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
	var conn *replica.Conn
	var err error
	if readOnly {
		conn, err = t.s.set.ReadConn(ctx, t.readOptions(ctx))
	} else if err = t.leaseErr(ctx); err == nil {
		conn, err = t.s.set.WriteConn(ctx)
	}
	if err != nil {
		return nil, t.fail(ctx, err)
	}
	inner, err := conn.BeginTx(ctx, opts)
	if err != nil {
		err = conn.Failed(ctx, err)
		conn.Release()
		return nil, t.fail(ctx, err)
	}
	if info := readInfoFrom(ctx); info != nil && readOnly {
		info.set(t.s.name, conn.Served())
	}
	return &routerTx{Tx: inner, t: t, keys: new([]string), own: &owned{conn: conn, write: !readOnly}}, nil
}

// owned is the connection of a transaction begun by BeginTx.
type owned struct {
	conn  *replica.Conn
	write bool
	done  bool
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
		if err := tx.Tx.Commit(ctx); err != nil {
			return t.fail(ctx, o.conn.Failed(ctx, err))
		}
		return nil
	}
	results, err := o.conn.Conn.Conn().PgConn().Exec(ctx, commitLSNSQL).ReadAll()
	var lsn replica.LSN
	switch {
	case err != nil && len(results) == 2:
		err = fmt.Errorf("%w: %w", replica.ErrCommitLSN, err)
	case err != nil:
		return t.fail(ctx, o.conn.Failed(ctx, err))
	case results[0].CommandTag.String() != "COMMIT":
		// The transaction had failed; PostgreSQL answers COMMIT with ROLLBACK.
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
	if err := tx.Tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return tx.t.fail(ctx, o.conn.Failed(ctx, err))
	}
	return nil
}
