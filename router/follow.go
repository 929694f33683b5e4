package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

const (
	defaultPollInterval = 5 * time.Second
	defaultFenceWait    = 10 * time.Second
	// retireAfter is how long a replica set that left the map keeps its
	// pools for calls that chose it just before the change; Close then
	// waits for the connections still in use.
	retireAfter = 2 * time.Second
	// storeTimeout bounds one read of the store.
	storeTimeout = 5 * time.Second
)

// follower keeps a router on the topology store's newest map. Every
// change of view happens on its goroutine; writers only ask it to look.
type follower struct {
	r      *Router
	epoch  time.Time // the origin of now()
	store  *topology.Store
	poll   time.Duration
	wait   time.Duration
	lookup func(string) (string, bool)
	opts   replica.Options // every set's options, as Open gives them

	kick    chan struct{}
	hold    atomic.Bool                   // test hook: ignore new versions
	changed atomic.Pointer[chan struct{}] // closed when the view changes

	mu        sync.Mutex
	ctlErr    string    // the last failure to read the store, "" after a success
	ctlOK     time.Time // the last successful read
	listening atomic.Bool
}

// MapStats says which map a router serves and where it came from.
type MapStats struct {
	// Version is the store's version of the map in use; 0 for a static map.
	Version int64
	// Changed is when the store recorded that version; Applied is when
	// this router started serving it. Zero for a static map.
	Changed, Applied time.Time
	// Following says the router follows a topology store.
	Following bool
	// Listening says its LISTEN connection to the store is up.
	Listening bool
	// ControlError is why the last read of the store failed, "" if it
	// succeeded: the router keeps serving on its last map meanwhile.
	ControlError string
	// ControlOK is when the store was last read.
	ControlOK time.Time
}

func (r *Router) mapStats() MapStats {
	v := r.current()
	ms := MapStats{Version: v.version, Changed: v.changed, Applied: v.applied}
	if f := r.follow; f != nil {
		ms.Following = true
		ms.Listening = f.listening.Load()
		f.mu.Lock()
		ms.ControlError, ms.ControlOK = f.ctlErr, f.ctlOK
		f.mu.Unlock()
	}
	return ms
}

// openFollowing opens a router on the store's newest map and starts
// following it.
func openFollowing(ctx context.Context, cfg Config) (*Router, error) {
	if len(cfg.Shards) > 0 {
		return nil, fmt.Errorf("%w: both Shards and Store are set", ErrInvalidConfig)
	}
	f := &follower{epoch: time.Now(), store: cfg.Store, poll: cfg.PollInterval, wait: cfg.FenceWait, lookup: cfg.Lookup, kick: make(chan struct{}, 1)}
	if f.poll < 0 || f.wait < 0 {
		return nil, fmt.Errorf("%w: PollInterval and FenceWait must not be negative", ErrInvalidConfig)
	}
	if f.poll == 0 {
		f.poll = defaultPollInterval
	}
	if f.wait == 0 {
		f.wait = defaultFenceWait
	}
	if f.lookup == nil {
		f.lookup = os.LookupEnv
	}
	m, err := cfg.Store.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("router: read the topology store: %w", err)
	}
	static := cfg
	static.Store = nil
	for _, sh := range m.Shards {
		sc, err := f.shardConfig(sh, m.Version)
		if err != nil {
			return nil, fmt.Errorf("%w: map version %d: %w", ErrInvalidConfig, m.Version, err)
		}
		static.Shards = append(static.Shards, sc)
	}
	r, err := Open(ctx, static)
	if err != nil {
		return nil, err
	}
	f.r = r
	f.opts = static.Replica
	if f.opts.Logger == nil {
		f.opts.Logger = static.Logger
	}
	if static.Tracer != nil {
		f.opts.Tracer = static.Tracer
	}
	first := *r.current()
	first.version, first.changed, first.applied = m.Version, m.ChangedAt, time.Now()
	first.meta = make(map[*shardState]shardMeta, len(first.shards))
	for _, st := range first.shards {
		st.tag = m.Version
		sh, _ := m.Shard(st.name)
		first.meta[st] = shardMeta{tag: m.Version, closed: sh.State == topology.StateFenced, spec: sh}
	}
	r.cur.Store(&first)
	ch := make(chan struct{})
	f.changed.Store(&ch)
	f.mu.Lock()
	f.ctlOK = time.Now()
	f.mu.Unlock()
	r.follow = f

	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := r.cancel
	r.cancel = func() { cancel(); stop() }
	r.wg.Add(3)
	go func() {
		defer r.wg.Done()
		f.listen(fctx)
	}()
	go func() {
		defer r.wg.Done()
		f.watchFences(fctx)
	}()
	go func() {
		defer r.wg.Done()
		f.run(fctx)
	}()
	return r, nil
}

// shardConfig turns a stored shard into a replica set's configuration:
// variables expanded, and each DSN tagged with the map version the set is
// built from, which the shard's fence checks.
func (f *follower) shardConfig(sh topology.Shard, version int64) (ShardConfig, error) {
	sc := ShardConfig{Name: sh.Name, Range: sh.Range}
	dsn := func(s string) (string, error) {
		x, err := topology.ExpandDSN(s, f.lookup)
		if err != nil {
			return "", fmt.Errorf("shard %s: %w", sh.Name, err)
		}
		return withVersion(x, version), nil
	}
	var err error
	if sc.Primary, err = dsn(sh.Primary); err != nil {
		return sc, err
	}
	for _, rep := range sh.Replicas {
		d, err := dsn(rep)
		if err != nil {
			return sc, err
		}
		sc.Replicas = append(sc.Replicas, d)
	}
	return sc, nil
}

// withVersion adds the run-time parameter pgshard.map_version to a DSN:
// sent in the startup packet, it costs no round trip.
func withVersion(dsn string, version int64) string {
	v := strconv.FormatInt(version, 10)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + url.QueryEscape(topology.VersionParam) + "=" + v
	}
	return dsn + " " + topology.VersionParam + "=" + v
}

// listen keeps a LISTEN on the store, asking for a reload at each
// notification and each time it (re)connects.
func (f *follower) listen(ctx context.Context) {
	backoff := listenBackoff0
	for ctx.Err() == nil {
		err := f.store.Listen(ctx, func() {
			f.listening.Store(true)
			backoff = listenBackoff0
			f.askReload()
		}, func(int64) { f.askReload() })
		f.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		f.r.log.Warn("topology listener down", "err", err.Error())
		sleep := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, listenBackoffN)
		select {
		case <-ctx.Done():
			return
		case <-time.After(sleep):
		}
	}
}

func (f *follower) askReload() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// run reloads on request and every poll interval until ctx ends.
func (f *follower) run(ctx context.Context) {
	tick := time.NewTicker(f.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-tick.C:
		}
		f.reload(ctx)
	}
}

// reload reads the store's newest map and serves it if it is newer.
func (f *follower) reload(ctx context.Context) {
	if f.hold.Load() {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, storeTimeout)
	m, err := f.store.Current(rctx)
	cancel()
	f.mu.Lock()
	if err != nil {
		if ctx.Err() == nil && f.ctlErr == "" {
			f.r.log.Warn("topology store unreadable: serving the last map", "version", f.r.current().version, "err", err.Error())
		}
		f.ctlErr = err.Error()
	} else {
		f.ctlErr, f.ctlOK = "", time.Now()
	}
	f.mu.Unlock()
	if err != nil || m.Version <= f.r.current().version {
		return
	}
	if err := f.apply(ctx, m); err != nil && ctx.Err() == nil {
		f.mu.Lock()
		f.ctlErr = err.Error()
		f.mu.Unlock()
		f.r.log.Warn("topology: cannot serve the new map: serving the last one", "version", m.Version, "err", err.Error())
	}
}

// apply builds the view of map m and swaps it in. Shards whose range,
// state and nodes did not change keep their replica set, cache listener
// and caches; the others get new sets, started (and their cache listeners
// up, within a bound) before the view is used. Sets that left the map are
// closed after retireAfter, once the calls that use them are done.
func (f *follower) apply(ctx context.Context, m *topology.Map) error {
	r := f.r
	km, err := m.Keyspace()
	if err != nil {
		return fmt.Errorf("map version %d: %w", m.Version, err)
	}
	old := r.current()
	byName := make(map[string]*shardState, len(old.shards))
	for _, st := range old.shards {
		byName[st.name] = st
	}
	next := &view{m: km, version: m.Version, changed: m.ChangedAt, meta: map[*shardState]shardMeta{}}
	var fresh []*shardState
	abandon := func() {
		for _, st := range fresh {
			if st.stopListen != nil {
				st.stopListen()
			}
			st.set.Close()
		}
	}
	for _, name := range km.Shards() {
		sh, _ := m.Shard(name)
		if st, ok := byName[name]; ok && sameShard(old.meta[st].spec, sh) {
			next.shards = append(next.shards, st)
			next.meta[st] = old.meta[st]
			continue
		}
		sc, err := f.shardConfig(sh, m.Version)
		if err != nil {
			abandon()
			return err
		}
		rng, _ := km.Range(name)
		st := newShardState(name, rng)
		st.tag = m.Version // the version its connections carry, which its fence and lease compare
		st.set, err = replica.New(ctx, replica.Config{Name: name, Primary: sc.Primary, Replicas: sc.Replicas, Weights: sc.Weights, Options: f.opts})
		if err != nil {
			abandon()
			return err
		}
		if was, ok := byName[name]; !ok || gains(was.rng, rng) {
			st.cutover = f.cutover(ctx, st)
		}
		fresh = append(fresh, st)
		next.shards = append(next.shards, st)
		next.meta[st] = shardMeta{tag: m.Version, closed: sh.State == topology.StateFenced, spec: sh}
	}
	for _, st := range fresh {
		r.startListener(ctx, st)
	}
	f.awaitListeners(ctx, fresh)
	if ctx.Err() != nil {
		abandon()
		return ctx.Err()
	}
	moved := !slices.Equal(old.m.Shards(), km.Shards())
	for _, st := range next.shards {
		if was, ok := old.m.Range(st.name); ok && was != st.rng {
			moved = true
		}
	}
	next.applied = time.Now()
	r.cur.Store(next)
	if moved {
		// Cached entries of a moved range may come from its old owner.
		r.purgeLocal()
	}
	ch := make(chan struct{})
	close(*f.changed.Swap(&ch))
	r.log.Info("topology: serving a new map", "version", m.Version, "new_sets", len(fresh))

	var gone []*shardState
	for _, st := range old.shards {
		if _, kept := next.meta[st]; !kept {
			gone = append(gone, st)
		}
	}
	if len(gone) > 0 {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			select {
			case <-ctx.Done():
			case <-time.After(retireAfter):
			}
			for _, st := range gone {
				st.stopListen()
				st.set.Close()
			}
		}()
	}
	return nil
}

// cutover reads the WAL position of a shard that gains a range: every
// write the range's old owner acknowledged was copied to it before, so a
// session read of the range goes to a node at or past this position
// (its old positions name the old owner). Without it (the primary is
// away), session reads of the shard go to its primary for a while.
func (f *follower) cutover(ctx context.Context, st *shardState) replica.LSN {
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, lsn, err := st.set.ExecLSN(cctx, "SELECT 1")
	if err != nil {
		f.r.log.Warn("topology: cannot read the cutover position of a shard that gains a range", "shard", st.name, "err", err.Error())
		return replica.LSN(1<<63 - 1) // past any replica, until the shard is rebuilt
	}
	return lsn
}

// gains reports whether range now holds IDs that range was did not.
func gains(was, now shard.Range) bool {
	endsAfter := was.End != 0 && (now.End == 0 || now.End > was.End)
	return now.Start < was.Start || endsAfter
}

// fenceWatch is how often a following router reads each shard's fence:
// once a range has moved, a router that has not heard of it reads the old
// shard for at most about this long (plus a check), then holds the reads
// of that shard until it has the map that moved it.
const fenceWatch = 500 * time.Millisecond

// watchFences reads every shard's fence on its primary each fenceWatch:
// this renews the router's leases (lease.go) and relaxes the fences whose
// time has come. A fence newer than the shard's set that gives the shard
// another range (or none) means the router's map is stale for reads too: it marks the shard
// (see Target.moved) and asks for a reload. A fence that only closes the
// shard for a switchover leaves reads alone.
func (f *follower) watchFences(ctx context.Context) {
	tick := time.NewTicker(fenceWatch)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, st := range f.r.current().shards {
			fr, err := f.renew(ctx, st)
			if err != nil || !fr.found {
				continue // no fence, or none readable now
			}
			if fr.due {
				f.relax(ctx, st, fr.version)
			}
			if fr.version <= st.tag {
				continue // one this set already follows
			}
			if fr.rng != st.rng.String() && st.movedAt.Load() < fr.version {
				st.movedAt.Store(fr.version)
				f.r.log.Warn("topology: a shard's fence says its range moved in a newer map: holding its reads until this router has it",
					"shard", st.name, "fence_version", fr.version, "map_version", f.r.current().version)
			}
			f.askReload()
		}
	}
}

// awaitListeners waits, within twice the connect timeout, until the new
// shards' cache listeners are up, so that a cached read of their ranges
// never misses an invalidation; one still down then makes its shard's
// cached reads bypass the cache until it is up.
func (f *follower) awaitListeners(ctx context.Context, sts []*shardState) {
	bound := f.opts.ConnectTimeout
	if bound <= 0 {
		bound = 2 * time.Second
	}
	deadline := time.Now().Add(2 * bound)
	for _, st := range sts {
		for !st.listening.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// sameShard reports whether a shard's set can be kept across two maps.
func sameShard(a, b topology.Shard) bool {
	return a.Name == b.Name && a.Range == b.Range && a.State == b.State && a.Primary == b.Primary && slices.Equal(a.Replicas, b.Replicas)
}

// await waits until the view's version is at least want, asking the
// follower to reload, until deadline or ctx ends.
func (f *follower) await(ctx context.Context, want int64, deadline time.Time) error {
	for {
		if f.r.current().version >= want {
			return nil
		}
		f.askReload()
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("timed out")
		}
		ch := *f.changed.Load()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(min(left, 100*time.Millisecond)):
		}
		if f.r.closed.Load() {
			return ErrClosed
		}
	}
}
