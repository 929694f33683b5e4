package router

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/shard"
)

// Target is one shard, as chosen by Router.User or Router.Key. It is a
// small value, cheap to copy and safe for concurrent use. Writes go to the
// shard's primary, reads to a replica that is fresh enough for the
// context's session (see WithSession) or to the primary (see WithPrimary).
type Target struct {
	r *Router
	s *shardState

	id     shard.ID // the key's ID, when keyed: a fenced write is routed again by it
	keyed  bool
	direct bool // one attempt, not through the fence's retry (see fence.go)
}

// Shard returns the shard's name.
func (t Target) Shard() string { return t.s.name }

// Range returns the shard's key range.
func (t Target) Range() shard.Range { return t.s.rng }

// Exec runs a statement on the shard's primary. Under a session it records
// the WAL position after the commit, in the same round trip, so that the
// session's later reads see the write; the statement then runs as
// BEGIN; statement; COMMIT, so one that cannot run inside a transaction
// block (VACUUM, CREATE INDEX CONCURRENTLY) must run without a session.
func (t Target) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.r.follow != nil && !t.direct {
		return t.fencedExec(ctx, sql, args)
	}
	if t.r.closed.Load() {
		return pgconn.CommandTag{}, ErrClosed
	}
	sess := SessionFrom(ctx)
	if sess == nil {
		return t.s.set.Exec(ctx, sql, args...)
	}
	tag, lsn, err := t.s.set.ExecLSN(ctx, sql, args...)
	if err != nil {
		return tag, err
	}
	sess.observe(t.s.name, lsn)
	return tag, nil
}

// Query runs a read on the shard: on a replica within the lag bound and at
// or past the session's position, else on the primary.
func (t Target) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.r.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := t.s.set.Read(ctx, t.readOptions(ctx), sql, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// QueryRow runs a read expected to return at most one row; see Query.
func (t Target) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.r.closed.Load() {
		return errRow{ErrClosed}
	}
	return t.s.set.ReadRow(ctx, t.readOptions(ctx), sql, args...)
}

// Tx runs fn in a transaction on the shard's primary, committing when fn
// returns nil and rolling back otherwise. Inside fn, Invalidate queues
// cache invalidations that take effect at commit. Under a session, the
// commit's WAL position is recorded, read in the same round trip as the
// COMMIT.
func (t Target) Tx(ctx context.Context, fn func(pgx.Tx) error) error {
	if t.r.follow != nil && !t.direct {
		return t.fencedTx(ctx, fn)
	}
	if t.r.closed.Load() {
		return ErrClosed
	}
	var keys []string
	lsn, err := t.s.set.Tx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
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
		return err
	}
	if sess := SessionFrom(ctx); sess != nil {
		sess.observe(t.s.name, lsn)
	}
	return nil
}

// readOptions turns the context's session, primary flag and cache load
// into the replica set's read options.
func (t Target) readOptions(ctx context.Context) replica.ReadOptions {
	o := replica.ReadOptions{Primary: primaryFrom(ctx)}
	sess := SessionFrom(ctx)
	load := loadFrom(ctx)
	info := readInfoFrom(ctx)
	if sess != nil {
		o.MinLSN, o.Observe = sess.LSN(t.s.name), true
	}
	if load != nil {
		o.MinLSN, o.Observe = max(o.MinLSN, replica.LSN(t.s.floor.Load())), true
	}
	if sess == nil && load == nil && info == nil {
		return o
	}
	name := t.s.name
	o.Done = func(sv replica.Served) {
		if sess != nil {
			sess.observe(name, sv.LSN)
		}
		if load != nil {
			load.observe(sv.LSN)
		}
		if info != nil {
			info.set(name, sv)
		}
	}
	return o
}

func (s *shardState) raiseFloor(lsn replica.LSN) {
	for {
		old := s.floor.Load()
		if uint64(lsn) <= old || s.floor.CompareAndSwap(old, uint64(lsn)) {
			return
		}
	}
}

// errRow is a pgx.Row that fails.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
