package router

import (
	"context"

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

	id      shard.ID // the key's ID, when keyed: a fenced write is routed again by it
	keyed   bool
	direct  bool // one attempt, not through the fence's retry (see fence.go)
	primary bool // reads go to the primary (Primary)
}

// Primary returns the target with its reads sent to the shard's primary,
// whatever the context says: for work that must read what it just wrote
// without a session, or a library that takes a Target-like database.
func (t Target) Primary() Target {
	t.primary = true
	return t
}

// Shard returns the shard's name.
func (t Target) Shard() string { return t.s.name }

// Range returns the shard's key range.
func (t Target) Range() shard.Range { return t.s.rng }

// Exec runs a statement on the shard's primary. Under a session it also
// records the WAL position after the commit, so that the session's later
// reads see the write. It accepts the same statements either way: with
// arguments, the session's Exec sends BEGIN, the statement, COMMIT and the
// position query in one round trip; without, it runs the SQL as Exec
// would (several statements, or one that cannot run in a transaction
// block, such as VACUUM) and reads the position on the same connection.
func (t Target) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.r.follow != nil && !t.direct {
		return t.fencedExec(ctx, sql, args)
	}
	if err := t.usable(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	sess := SessionFrom(ctx)
	if sess == nil {
		tag, err := t.s.set.Exec(ctx, sql, args...)
		return tag, t.fail(ctx, err)
	}
	tag, lsn, err := t.s.set.ExecLSN(ctx, sql, args...)
	if err != nil {
		return tag, t.fail(ctx, err)
	}
	sess.observe(t.s.name, lsn)
	return tag, nil
}

// Query runs a read on the shard: on a replica within the lag bound and at
// or past the session's position, else on the primary.
func (t Target) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.usable(ctx); err != nil {
		return nil, err
	}
	if t.s.movedAt.Load() > t.s.tag {
		var err error
		if t, err = t.moved(ctx); err != nil {
			return nil, err
		}
	}
	rows, err := t.s.set.Read(ctx, t.readOptions(ctx), sql, args...)
	if err != nil {
		return nil, t.fail(ctx, err)
	}
	return rows, nil
}

// QueryRow runs a read expected to return at most one row; see Query.
func (t Target) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.usable(ctx); err != nil {
		return errRow{err}
	}
	if t.s.movedAt.Load() > t.s.tag {
		var err error
		if t, err = t.moved(ctx); err != nil {
			return errRow{err}
		}
	}
	return row{t: t, ctx: ctx, row: t.s.set.ReadRow(ctx, t.readOptions(ctx), sql, args...)}
}

// Tx runs fn in a transaction on the shard's primary, committing when fn
// returns nil and rolling back otherwise. Inside fn, Invalidate queues
// cache invalidations that take effect at commit. Under a session, the
// commit's WAL position is recorded, read in the same round trip as the
// COMMIT. Its errors, fn's included, name the shard.
func (t Target) Tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return t.BeginTxFunc(ctx, pgx.TxOptions{}, fn)
}

// usable fails a call that cannot start: the router is closed, or ctx
// has ended.
func (t Target) usable(ctx context.Context) error {
	if t.r.closed.Load() {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return t.fail(ctx, ctx.Err())
	}
	return nil
}

// readOptions turns the context's session, primary flag and cache load
// into the replica set's read options.
func (t Target) readOptions(ctx context.Context) replica.ReadOptions {
	o := replica.ReadOptions{Primary: t.primary || primaryFrom(ctx)}
	sess := SessionFrom(ctx)
	load := loadFrom(ctx)
	info := readInfoFrom(ctx)
	if sess != nil {
		// A range the shard gained in a map change may hold the session's
		// writes made on its old owner: read where the cutover is visible.
		o.MinLSN, o.Observe = max(sess.LSN(t.s.name), t.s.cutover), true
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

// row names the shard in a QueryRow's error, like Query's.
type row struct {
	t   Target
	ctx context.Context
	row pgx.Row
}

func (r row) Scan(dest ...any) error { return r.t.fail(r.ctx, r.row.Scan(dest...)) }
