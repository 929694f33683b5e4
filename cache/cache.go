package cache

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Cache is a typed, sharded, expiring LRU with single-flight loads; it is safe for concurrent
// use by multiple goroutines. Create one with New and release it with Close.
type Cache[K comparable, V any] struct {
	shards []shard[K, V]
	mask   uint64
	seed   maphash.Seed
	cfg    config[K, V]
	clock  clock

	// epoch is bumped by Purge; a shard that sees a new epoch drops everything it holds.
	epoch  atomic.Uint64
	purges atomic.Uint64

	closed  atomic.Bool
	closing context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // loads in flight and the janitor
	once    sync.Once
}

// shard is one lock stripe: a segmented LRU and the loads in flight for its keys. A hit writes
// only the first cache line, which holds the lock and the counters; shards are padded to two
// whole lines so that no two share one (see TestShardSize).
type shard[K comparable, V any] struct {
	mu    sync.Mutex
	n     counters
	epoch uint64
	lru   slru[K, V]
	calls map[K]*call[V] // the load in flight for a key; removing it invalidates that load
	_     [16]byte
}

// entry is a cached value, or a remembered "not found" when err is non-nil.
type entry[V any] struct {
	val     V
	err     error
	expires int64 // clock nanos; never if it does not expire
	refresh int64 // clock nanos after which a lookup refreshes it; never if not
	hot     bool  // read since it was last examined for eviction
}

const never = math.MaxInt64

// New returns a cache configured by opts, whose fields document their defaults. If anything in
// opts can expire or refresh, New starts the cache's one janitor goroutine, which Close stops.
func New[K comparable, V any](opts Options) *Cache[K, V] {
	cfg := configOf[K, V](opts)
	c := &Cache[K, V]{
		shards: make([]shard[K, V], cfg.shards),
		mask:   uint64(cfg.shards - 1),
		seed:   maphash.MakeSeed(),
		cfg:    cfg,
		clock:  clock{start: time.Now(), now: cfg.now},
	}
	if c.clock.now != nil {
		c.clock.start = c.clock.now()
	}
	for i := range c.shards {
		// Spread the remainder so that the shards add up to exactly the capacity.
		size := cfg.capacity / cfg.shards
		if i < cfg.capacity%cfg.shards {
			size++
		}
		c.shards[i].lru = newSLRU[K, V](size)
	}
	c.closing, c.cancel = context.WithCancel(context.Background())
	if step := cfg.step(); step > 0 {
		c.wg.Add(1)
		go c.janitor(step, cfg.sweepEvery())
	}
	return c
}

// Get returns the value cached for key, if it is there and has not expired.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	s := c.shardFor(key)
	s.mu.Lock()
	s.sync(c)
	e, ok := s.lru.get(key)
	if ok && e.err == nil && (e.expires == never || c.clock.nanos() < e.expires) {
		s.n.hits++
		s.mu.Unlock()
		return e.val, true
	}
	expired := ok && s.expire(c, key, e)
	s.n.misses++
	s.mu.Unlock()
	if expired {
		c.evicted(key, e)
	}
	var zero V
	return zero, false
}

// Set caches value under key for Options.TTL. A load of key that is in flight will not
// overwrite it.
func (c *Cache[K, V]) Set(key K, value V) {
	e := c.newEntry(value, nil)
	s := c.shardFor(key)
	s.mu.Lock()
	s.sync(c)
	if c.closed.Load() {
		s.mu.Unlock()
		return
	}
	delete(s.calls, key)
	oldKey, old, evicted := s.lru.add(key, e)
	if evicted {
		s.n.evictions++
	}
	s.mu.Unlock()
	if evicted {
		c.evicted(oldKey, old)
	}
}

// Delete drops key. A load of key that started before Delete does not store its result, and a
// lookup after Delete never waits for that load.
func (c *Cache[K, V]) Delete(key K) {
	s := c.shardFor(key)
	s.mu.Lock()
	s.sync(c)
	_, loading := s.calls[key]
	if s.lru.remove(key) || loading {
		s.n.invalidations++
	}
	delete(s.calls, key)
	s.mu.Unlock()
}

// Purge drops every key, with the same guarantee for loads in flight as Delete. It takes O(1):
// each shard drops its entries at its next use.
func (c *Cache[K, V]) Purge() {
	c.purges.Add(1)
	c.epoch.Add(1)
}

// Len returns how many entries the cache holds, including expired ones not yet dropped and
// remembered "not found" answers.
func (c *Cache[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.sync(c)
		n += s.lru.len()
		s.mu.Unlock()
	}
	return n
}

// Close empties the cache, cancels the context of every load in flight, and waits for those
// loads (a loader that ignores its context delays Close) and the janitor to return. Afterwards
// Set does nothing and lookups miss without loading. Close is idempotent.
func (c *Cache[K, V]) Close() {
	c.once.Do(func() {
		c.closed.Store(true)
		c.epoch.Add(1)
		// A load starts under its shard's lock, after checking closed: once every shard's lock
		// has been taken here, no load can start, so wg.Add never races wg.Wait.
		for i := range c.shards {
			s := &c.shards[i]
			s.mu.Lock()
			s.sync(c)
			s.mu.Unlock()
		}
		c.cancel()
		c.wg.Wait()
	})
}

func (c *Cache[K, V]) shardFor(key K) *shard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, key)&c.mask]
}

// sync applies a Purge the shard has not seen yet; the caller holds s.mu.
func (s *shard[K, V]) sync(c *Cache[K, V]) {
	if e := c.epoch.Load(); e != s.epoch {
		s.lru = newSLRU[K, V](s.lru.capacity)
		s.calls = nil
		s.epoch = e
	}
}

// lookup returns key's live entry and records the hit in LRU order. An expired entry is dropped
// and returned with expired set, for OnEvict. The caller holds s.mu.
func (s *shard[K, V]) lookup(c *Cache[K, V], key K) (e entry[V], ok, expired bool) {
	e, ok = s.lru.get(key)
	if ok && s.expire(c, key, e) {
		return e, false, true
	}
	return e, ok, false
}

// expire drops key if its entry e has expired, reporting whether it did. The caller holds s.mu.
func (s *shard[K, V]) expire(c *Cache[K, V], key K, e entry[V]) bool {
	if e.expires == never || c.clock.nanos() < e.expires {
		return false
	}
	s.lru.remove(key)
	s.n.expirations++
	return true
}

// newEntry stamps a value, or a "not found" error, with its deadlines.
func (c *Cache[K, V]) newEntry(value V, err error) entry[V] {
	e := entry[V]{val: value, err: err, expires: never, refresh: never}
	ttl, refresh := c.cfg.ttl, c.cfg.refreshAfter
	if err != nil {
		ttl, refresh = c.cfg.negativeTTL, 0
	}
	if ttl == 0 && refresh == 0 {
		return e
	}
	now := c.clock.nanos()
	if ttl > 0 {
		e.expires = now + int64(ttl)
	}
	if refresh > 0 {
		e.refresh = now + int64(refresh)
	}
	return e
}

// evicted hands a dropped value to OnEvict; the caller holds no lock.
func (c *Cache[K, V]) evicted(key K, e entry[V]) {
	if c.cfg.onEvict != nil && e.err == nil {
		c.cfg.onEvict(key, e.val)
	}
}
