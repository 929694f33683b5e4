package router

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/replica"
)

// Cache is a read-through cache of values of type T, bound to a router so
// that Invalidate reaches it in every process. It is safe for concurrent
// use; the router closes it on Close.
//
// Coherence: a value is dropped when a transaction that called Invalidate
// for its key commits, at once in the writing process and when the
// notification arrives elsewhere. A load after an invalidation reads only
// from a node that has replayed the invalidating commit, so a lagging
// replica cannot bring the old value back. While a shard's listener is
// down, reads of that shard bypass the cache.
//
// Under a session, a cached value is served once this process has received
// every invalidation up to the session's position on the shard (see
// Config.SessionCacheWait): then any key the session's writes invalidated
// has been dropped, and any other entry is as good for the session as for
// anyone. A session read that cannot wait reads past the cache; it never
// evicts the entry, and stores its result only if it is newer. Writes that
// do not call Invalidate are not seen through the cache, with or without a
// session, until their entries expire.
type Cache[T any] struct {
	r    *Router
	name string
	c    *cache.Cache[string, cached[T]]
	// The cache package counts every lookup; these correct its figures for
	// what Get decides on top, so that a hit costs no shared counter here:
	// probed counts hit-path lookups that missed (the Lookup after them
	// counts the miss again), bypassed the reads that never reach the cache
	// (each one load), and past the session reads that read past it.
	probed, bypassed, past atomic.Uint64
}

// cached is a value with the WAL position its load saw.
type cached[T any] struct {
	v   T
	lsn replica.LSN
}

// newer keeps the cached value unless the loaded one saw a later position.
func newer[T any](c, loaded cached[T]) bool { return c.lsn >= loaded.lsn }

// NewCache makes a cache for values of type T. name labels its statistics.
// The zero cache.Options takes the router's Config.Cache; either way the
// options mean what cache.Options says (zero Capacity is
// cache.DefaultCapacity).
func NewCache[T any](r *Router, name string, opts cache.Options) *Cache[T] {
	if isZero(opts) {
		opts = r.cfg.Cache
	}
	c := &Cache[T]{r: r, name: name, c: cache.New[string, cached[T]](opts)}
	r.register(c)
	return c
}

func isZero(o cache.Options) bool {
	return o.Capacity == 0 && o.TTL == 0 && o.NegativeTTL == 0 && o.RefreshAfter == 0 &&
		o.LoadTimeout == 0 && o.Shards == 0 && o.OnEvict == nil && o.Now == nil
}

// Get returns the value for key from the cache, or loads it with load and
// caches it. Reads of t inside load go to a node that has replayed every
// invalidation of this shard seen so far. A load returning an error that
// wraps cache.ErrNotFound is remembered for cache.Options.NegativeTTL.
func (c *Cache[T]) Get(ctx context.Context, t Target, key string, load func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if c.r.closed.Load() {
		return zero, ErrClosed
	}
	if !t.s.listening.Load() {
		// Blind to invalidations: read through.
		c.bypassed.Add(1)
		v, _, err := c.load(ctx, load)
		return v, err
	}
	sess := SessionFrom(ctx)
	if sess == nil {
		// The common hit: no session to check the entry against, and no
		// loader closure to allocate.
		if e, ok := c.c.Get(key); ok {
			servedFromCache(ctx, t)
			return e.v, nil
		}
		c.probed.Add(1)
	}
	loader := func(ctx context.Context) (cached[T], error) {
		v, lsn, err := c.load(ctx, load)
		return cached[T]{v: v, lsn: lsn}, err
	}
	if sess != nil {
		min := sess.LSN(t.s.name)
		if min > 0 && !t.s.barrier.reached(min) && !t.s.barrier.await(ctx, min, c.r.cfg.sessionCacheWait()) {
			if err := ctx.Err(); err != nil {
				return zero, t.fail(ctx, err)
			}
			// Not known to hold every invalidation the session needs: read
			// past the cache, at the session's position, leaving the entry
			// to the others and storing the result only if it is newer.
			c.past.Add(1)
			e, err := c.c.Replace(ctx, key, loader, newer[T])
			if err == nil || errors.Is(err, cache.ErrNotFound) {
				sess.observe(t.s.name, e.lsn)
			}
			return e.v, err
		}
	}
	e, hit, err := c.c.Lookup(ctx, key, loader)
	if err != nil {
		return zero, err
	}
	if sess != nil {
		sess.observe(t.s.name, e.lsn) // monotonic reads: later reads see at least this
	}
	if hit {
		servedFromCache(ctx, t)
	}
	return e.v, nil
}

// servedFromCache tells the context's ReadInfo, if any, that the cache answered.
func servedFromCache(ctx context.Context, t Target) {
	if info := readInfoFrom(ctx); info != nil {
		info.setCache(t.s.name)
	}
}

// load runs the user's loader with a context that raises reads to the
// shard's invalidation floor and records the newest position they saw.
func (c *Cache[T]) load(ctx context.Context, load func(context.Context) (T, error)) (T, replica.LSN, error) {
	rec := &loadRecord{}
	v, err := load(context.WithValue(ctx, loadKey, rec))
	return v, rec.get(), err
}

// Delete drops key from this process's cache only; use Invalidate inside a
// write transaction to reach every process.
func (c *Cache[T]) Delete(key string) { c.c.Delete(key) }

// Stats returns the cache's figures. Hits and Misses count Get calls
// answered from the cache or not, and Loads every load Get ran: reads that
// bypassed the cache, or read past it, included.
func (c *Cache[T]) Stats() cache.Stats {
	// Read the corrections first: each is counted after the lookup it
	// corrects, so the cache's own figures, read later, cover them.
	probed, bypassed, past := c.probed.Load(), c.bypassed.Load(), c.past.Load()
	st := c.c.Stats()
	st.Misses = st.Misses - probed + bypassed + past
	st.Loads += bypassed
	return st
}

func (c *Cache[T]) drop(keys []string) {
	for _, k := range keys {
		c.c.Delete(k)
	}
}

func (c *Cache[T]) purge() { c.c.Purge() }

func (c *Cache[T]) stats() (string, cache.Stats) { return c.name, c.Stats() }

func (c *Cache[T]) close() { c.c.Close() }

// loadRecord collects the positions seen by the reads of one load.
type loadRecord struct {
	mu  sync.Mutex
	lsn replica.LSN
}

func (l *loadRecord) observe(lsn replica.LSN) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lsn = max(l.lsn, lsn)
}

func (l *loadRecord) get() replica.LSN {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lsn
}

func loadFrom(ctx context.Context) *loadRecord {
	l, _ := ctx.Value(loadKey).(*loadRecord)
	return l
}
