package router

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/replica"
)

// BeginTxFunc is Tx with pgx's transaction options: isolation level,
// access mode and deferrable mode. A read-only transaction that is not
// serializable runs where a read may (see BeginTx).
func (t Target) BeginTxFunc(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	if opts.AccessMode == pgx.ReadOnly && opts.IsoLevel != pgx.Serializable {
		return t.readTx(ctx, opts, fn)
	}
	if t.r.follow != nil && !t.direct {
		return t.fenced(ctx, func(t Target) error { return t.BeginTxFunc(ctx, opts, fn) })
	}
	if err := t.usable(ctx); err != nil {
		return err
	}
	var keys []string
	lsn, err := t.s.set.Tx(ctx, opts, func(tx pgx.Tx) error {
		return fn(&routerTx{Tx: tx, t: t, keys: &keys})
	})
	committed := err == nil || errors.Is(err, replica.ErrCommitLSN)
	if committed && len(keys) > 0 {
		// Loads from now on must see this commit: a replica that has not
		// replayed it would bring the old value back into the cache.
		if lsn != 0 {
			t.s.raiseFloor(lsn)
		}
		t.r.dropLocal(keys)
	}
	if err != nil {
		return t.fail(ctx, err)
	}
	if sess := SessionFrom(ctx); sess != nil {
		sess.observe(t.s.name, lsn)
	}
	return nil
}

// readTx runs fn in a read-only transaction begun by BeginTx.
func (t Target) readTx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) (err error) {
	tx, err := t.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return t.fail(ctx, err)
	}
	return tx.Commit(ctx)
}
