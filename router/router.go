package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/shard"
)

// Router sends each key's statements to the shard that owns it. It is safe
// for concurrent use. Close stops its background work and closes every
// pool.
type Router struct {
	m       *shard.Map    // the map at Open; current() has the one in use
	shards  []*shardState // in keyspace order, as m.Shards(), at Open
	cur     atomic.Pointer[view]
	follow  *follower // nil for a static map
	cfg     Config
	log     *slog.Logger
	channel string

	mu     sync.Mutex
	caches []invalidator // every cache made with NewCache

	closed    atomic.Bool
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// shardState is one shard: its replica set and its cache listener.
type shardState struct {
	name string
	rng  shard.Range
	set  *replica.Set

	stopListen context.CancelFunc // ends this shard's cache listener
	cutover    replica.LSN        // set before use: session reads wait for it (a range gained, see follow.go)
	tag        int64              // the map version its set was built from (0: a static map)
	movedAt    atomic.Int64       // a fence newer than tag moved this shard's range: reads wait for that map (fence.go)
	lease      lease              // writes of a following router need it (lease.go)

	listening     atomic.Bool   // the LISTEN connection is up: cached reads may use the cache
	barrier       *barrier      // what this process has received of the shard's invalidations
	up            chan struct{} // closed when the listener is first up
	upOnce        sync.Once
	floor         atomic.Uint64 // cache loads read at or past this LSN (the last invalidation's commit)
	invalidations atomic.Uint64 // keys dropped on notifications
	reconnects    atomic.Uint64 // listener (re)connections
	floorReads    atomic.Uint64 // batches of invalidations handled, each with one read of the position
	listenerPID   atomic.Uint32 // the listener's backend, 0 while it is down
}

// Open validates cfg, connects to every shard and starts the checkers and
// cache listeners. It fails if the configuration is invalid, or if no
// shard's primary can be reached within ctx; a single shard that is down
// is logged, reported by Stats, and checked again in the background.
func Open(ctx context.Context, cfg Config) (*Router, error) {
	if cfg.Store != nil {
		return openFollowing(ctx, cfg)
	}
	m, names, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Router{m: m, cfg: cfg, log: log, channel: cfg.channel()}
	byName := make(map[string]ShardConfig, len(names))
	for i, name := range names {
		byName[name] = cfg.Shards[i]
	}
	r.shards = make([]*shardState, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range m.Shards() {
		sc := byName[name]
		rng, _ := m.Range(name)
		ro := cfg.Replica
		if ro.Logger == nil {
			ro.Logger = cfg.Logger
		}
		if cfg.Tracer != nil {
			ro.Tracer = cfg.Tracer
		}
		st := newShardState(name, rng)
		r.shards[i] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.set, errs[i] = replica.New(ctx, replica.Config{Name: name, Primary: sc.Primary, Replicas: sc.Replicas, Weights: sc.Weights, Options: ro})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.closeSets()
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	up := 0
	var why []string
	for _, st := range r.shards {
		if st.set.PrimaryIndex() >= 0 {
			up++
			continue
		}
		cause := primaryError(st.set.Stats())
		log.Warn("shard has no reachable primary at open", "shard", st.name, "err", cause)
		why = append(why, "shard "+st.name+": "+cause)
	}
	if up == 0 {
		r.closeSets()
		msg := "router: no shard primary reachable: " + strings.Join(why, "; ")
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", msg, ctx.Err())
		}
		return nil, errors.New(msg)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.cur.Store(&view{m: m, shards: r.shards, meta: map[*shardState]shardMeta{}})
	for _, st := range r.shards {
		r.startListener(bg, st)
	}
	r.awaitListeners(ctx)
	return r, nil
}

// awaitListeners waits until every shard whose primary is reachable has
// its cache listener up, so that cached reads use the cache from the first
// one. It is bounded by ctx and by twice the replica ConnectTimeout; a
// listener still down then is logged, and its shard's cached reads bypass
// the cache until it is up.
func (r *Router) awaitListeners(ctx context.Context) {
	bound := r.cfg.Replica.ConnectTimeout
	if bound <= 0 {
		bound = 2 * time.Second
	}
	timer := time.NewTimer(2 * bound)
	defer timer.Stop()
	for _, st := range r.shards {
		if st.set.PrimaryIndex() < 0 {
			continue
		}
		select {
		case <-st.up:
		case <-ctx.Done():
			r.log.Warn("cache listener not up at open", "shard", st.name, "err", ctx.Err().Error())
			return
		case <-timer.C:
			r.log.Warn("cache listener not up at open", "shard", st.name, "err", "timed out")
			return
		}
	}
}

func newShardState(name string, rng shard.Range) *shardState {
	st := &shardState{name: name, rng: rng, up: make(chan struct{})}
	st.barrier = newBarrier(st.sendMarker)
	return st
}

func (s *shardState) markUp() { s.upOnce.Do(func() { close(s.up) }) }

// primaryError says why a set has no primary: the configured primary's
// last check error (pgx errors name user and database, never a password).
func primaryError(st replica.Stats) string {
	if len(st.Nodes) == 0 {
		return "no nodes"
	}
	n := st.Nodes[0]
	switch {
	case st.SplitBrain:
		return "more than one node reports primary"
	case n.Error != "":
		return n.Addr + ": " + n.Error
	case n.Role == replica.RoleReplica:
		return n.Addr + " is in recovery (a replica), and no other node reports primary"
	}
	return n.Addr + ": not reachable"
}

// Close stops the listeners and checkers and closes every pool. It is
// idempotent; calls after Close fail with ErrClosed.
func (r *Router) Close() {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
		for _, c := range r.cachesNow() {
			c.close()
		}
		r.closeSets()
	})
}

func (r *Router) closeSets() {
	shards := r.shards
	if v := r.cur.Load(); v != nil {
		shards = v.shards
	}
	for _, st := range shards {
		if st != nil && st.set != nil {
			st.set.Close()
		}
	}
}

// User returns the target for a user ID: Key(shard.HashInt64(userID)).
func (r *Router) User(userID int64) Target {
	return r.Key(shard.HashInt64(userID))
}

// Key returns the target for a keyspace ID.
func (r *Router) Key(id shard.ID) Target {
	v := r.current()
	return Target{r: r, s: v.shards[v.m.Index(id)], id: id, keyed: true}
}

// Shard returns the target for a shard by name, and whether it exists.
func (r *Router) Shard(name string) (Target, bool) {
	for _, st := range r.current().shards {
		if st.name == name {
			return Target{r: r, s: st}, true
		}
	}
	return Target{}, false
}

// Shards returns every shard's target, in keyspace order.
func (r *Router) Shards() []Target {
	shards := r.current().shards
	ts := make([]Target, len(shards))
	for i, st := range shards {
		ts[i] = Target{r: r, s: st}
	}
	return ts
}

// Map returns the shard map in use (see Stats for its version).
func (r *Router) Map() *shard.Map { return r.current().m }
