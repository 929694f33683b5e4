package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/topology"
)

// A router that follows a topology store writes to a shard only while it
// holds a lease on the shard's set: until FenceState.Lease (DefaultLease
// without a fence) after it last read the shard's fence and found no
// fence newer than the set's map. A shard's fence triggers are removed
// (topology.RelaxFence) once every router with an older map has lost its
// lease, so the lease, not the trigger, keeps such a router from writing
// after that; until then both do. Leases are renewed with the fence
// reads that the router makes anyway (watchFences), and on demand by a
// write that finds none.

const (
	// relaxWait bounds how long a relax waits for the transactions it
	// must outlive (each table's lock it waits for 200 ms at most).
	relaxWait = 2 * time.Second
	// relaxRetry is how long a router waits before trying again to relax
	// a fence it failed to relax (its role may not own the tables).
	relaxRetry = 10 * time.Second
)

// lease is a router's right to write to one shard's set. It is safe for
// concurrent use.
type lease struct {
	mu        sync.Mutex   // one renewal at a time: results apply in the order read
	end       atomic.Int64 // writes may be sent until then (the follower's clock); 0: never
	refused   atomic.Int64 // the version of the fence that refuses this set's map, 0 if none
	relaxing  atomic.Bool
	relaxNext atomic.Int64 // no relax before then, after one failed
	warned    atomic.Int64 // the fence version whose failed relax was logged
}

// fenceRow is what a renewal read of a shard's fence found.
type fenceRow struct {
	found   bool
	version int64
	rng     string
	closed  bool
	lease   time.Duration
	due     bool // its triggers may be removed now
}

const (
	leaseSQL = `SELECT version, range, closed, lease_ms,
		coalesce(NOT closed AND relaxed_at IS NULL AND clock_timestamp() >= relax_after, false) FROM pgshard.fence`
	leaseSQLBefore = `SELECT version, range, closed FROM pgshard.fence` // a fence installed before leases
)

// now is the follower's monotonic clock, in nanoseconds.
func (f *follower) now() int64 { return int64(time.Since(f.epoch)) }

// renew reads st's fence on its primary and renews or ends st's lease.
func (f *follower) renew(ctx context.Context, st *shardState) (fenceRow, error) {
	st.lease.mu.Lock()
	defer st.lease.mu.Unlock()
	sent := f.now()
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	fr := fenceRow{found: true}
	var ms int64
	err := st.set.ReadRow(cctx, replica.ReadOptions{Primary: true}, leaseSQL).Scan(&fr.version, &fr.rng, &fr.closed, &ms, &fr.due)
	if pgCode(err) == "42703" {
		ms = topology.DefaultLease.Milliseconds()
		err = st.set.ReadRow(cctx, replica.ReadOptions{Primary: true}, leaseSQLBefore).Scan(&fr.version, &fr.rng, &fr.closed)
	}
	switch code := pgCode(err); {
	case errors.Is(err, pgx.ErrNoRows) || code == "42P01" || code == "3F000":
		fr = fenceRow{}
		ms = topology.DefaultLease.Milliseconds()
	case err != nil:
		return fr, fmt.Errorf("router: shard %s: read its fence to renew the write lease: %w", st.name, err)
	}
	fr.lease = time.Duration(ms) * time.Millisecond
	if fr.found && fr.version > st.tag {
		st.lease.end.Store(0)
		st.lease.refused.Store(fr.version)
	} else {
		st.lease.end.Store(sent + int64(fr.lease))
		st.lease.refused.Store(0)
	}
	return fr, nil
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// leaseErr returns nil if t's router may write to t's set now, renewing
// its lease if it must; a *topology.FenceError if the shard's fence
// refuses the set's map; or why the fence could not be read.
func (t Target) leaseErr(ctx context.Context) error {
	f := t.r.follow
	if f == nil || f.now() < t.s.lease.end.Load() {
		return nil
	}
	// A read that took longer than the lease renews nothing: try again.
	for range 3 {
		if _, err := f.renew(ctx, t.s); err != nil {
			return err
		}
		if f.now() < t.s.lease.end.Load() {
			return nil
		}
		if v := t.s.lease.refused.Load(); v > 0 {
			f.askReload()
			return &topology.FenceError{Version: v}
		}
	}
	return fmt.Errorf("router: shard %s: its fence took longer to read than the write lease lasts", t.s.name)
}

// relax removes st's fence triggers in the background (see
// topology.RelaxFence), one attempt at a time.
func (f *follower) relax(ctx context.Context, st *shardState, version int64) {
	if f.now() < st.lease.relaxNext.Load() || !st.lease.relaxing.CompareAndSwap(false, true) {
		return
	}
	f.r.wg.Add(1)
	go func() {
		defer f.r.wg.Done()
		defer st.lease.relaxing.Store(false)
		cctx, cancel := context.WithTimeout(ctx, storeTimeout+relaxWait)
		defer cancel()
		conn, err := st.set.Connect(cctx)
		if err == nil {
			var done bool
			done, err = topology.RelaxFence(cctx, conn, relaxWait)
			conn.Close(context.WithoutCancel(cctx))
			if done {
				f.r.log.Info("topology: relaxed a shard's fence: every router with an older map has lost its lease", "shard", st.name)
			}
		}
		if err != nil && ctx.Err() == nil {
			st.lease.relaxNext.Store(f.now() + int64(relaxRetry))
			if st.lease.warned.Swap(version) != version {
				f.r.log.Warn("topology: cannot relax a shard's fence yet (trying again every 10 s)", "shard", st.name, "err", err.Error())
			}
		}
	}()
}
