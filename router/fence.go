package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/topology"
)

// Writes under a router that follows a topology store go through fenced:
// a write the shard's fence refuses (SQLSTATE PGS01, see package topology)
// did nothing, so it is routed again, by its key, on a map at least as new
// as the fence, within Config.FenceWait. A write to a shard whose state is
// fenced waits the same way for a map that opens it, without being sent.

func (t Target) fencedExec(ctx context.Context, sql string, args []any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := t.fenced(ctx, func(t Target) error {
		var err error
		tag, err = t.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

// fenced runs op on t's shard in the newest view, again on a newer view
// each time a fence refuses it, until FenceWait has passed.
func (t Target) fenced(ctx context.Context, op func(Target) error) error {
	f := t.r.follow
	deadline := time.Now().Add(f.wait)
	var refusedBy *shardState
	for {
		v := t.r.current()
		cur, ok := t.in(v)
		if !ok {
			return fmt.Errorf("router: shard %s %w (version %d)", t.s.name, errShardGone, v.version)
		}
		var err error
		var want int64
		if meta := v.meta[cur.s]; meta.closed {
			err, want = &topology.FenceError{Version: v.version, Closed: true}, v.version+1
		} else if lerr := cur.leaseErr(ctx); lerr != nil {
			fe, refused := topology.IsFenced(lerr)
			if !refused {
				return lerr
			}
			err, want = fe, max(fe.Version, meta.tag+1)
		} else {
			err = op(cur)
			fe, refused := topology.IsFenced(err)
			switch {
			case refused:
				err, want = fe, max(fe.Version, meta.tag+1)
				if refusedBy == cur.s {
					// Refused twice by one set: the store has not published
					// the fence's version yet. Do not spin.
					time.Sleep(20 * time.Millisecond)
				}
				refusedBy = cur.s
			case errors.Is(err, replica.ErrClosed) && !t.r.closed.Load() && t.r.current() != v:
				continue // its set was retired by a new map before the call reached it
			default:
				return err
			}
		}
		if werr := f.await(ctx, want, deadline); werr != nil {
			return fmt.Errorf("router: shard %s: %w (waited up to %s for a map that lets it through: %v)", cur.s.name, err, f.wait, werr)
		}
	}
}

// in returns the target of the same key (or, for a target chosen by
// name, the same shard) in view v, for one direct attempt.
func (t Target) in(v *view) (Target, bool) {
	out := t
	out.direct = true
	if t.keyed {
		out.s = v.shards[v.m.Index(t.id)]
		return out, true
	}
	for _, st := range v.shards {
		if st.name == t.s.name {
			out.s = st
			return out, true
		}
	}
	return out, false
}

// errShardGone is a call on a shard that a newer map no longer has (its
// range was split onto other shards): a call planned on the older map,
// such as a Gather, plans again.
var errShardGone = errors.New("is no longer in the map")

// moved is for a read of a shard whose fence says its range moved in a map
// newer than its set's: it waits, within FenceWait, for a map at least
// that new, and returns the target of the same key (or shard) there.
// Without one, the read fails: a stale map would read data its shard no
// longer owns.
func (t Target) moved(ctx context.Context) (Target, error) {
	f := t.r.follow
	want := t.s.movedAt.Load()
	if err := f.await(ctx, want, time.Now().Add(f.wait)); err != nil {
		return t, fmt.Errorf("router: shard %s: %w (its range moved at map version %d; waited up to %s for it: %v)",
			t.s.name, topology.ErrFenced, want, f.wait, err)
	}
	nt, ok := t.in(t.r.current())
	if !ok {
		return t, fmt.Errorf("router: shard %s %w", t.s.name, errShardGone)
	}
	nt.direct = t.direct
	return nt, nil
}

// noteFence turns a fence's refusal into a *topology.FenceError (which
// still unwraps to the server's error), and asks a following router to
// reload: the calls that are not retried (SendBatch, CopyFrom, BeginTx,
// whose statements or rows cannot be sent again) fail with it, and the
// next call finds the new map.
func (r *Router) noteFence(err error) error {
	fe, ok := topology.IsFenced(err)
	if !ok {
		return err
	}
	if r.follow != nil {
		r.follow.askReload()
	}
	var already *topology.FenceError
	if errors.As(err, &already) {
		return err
	}
	return fe
}
