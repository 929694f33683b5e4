package cache

import (
	"runtime"
	"time"
)

// DefaultCapacity is how many entries a cache holds when Options.Capacity is not positive.
const DefaultCapacity = 10_000

// Bounds on the number of shards New chooses by itself: few enough that each shard is large
// enough for LRU order to mean something, and that the shards' fixed cost stays small.
const (
	minShardCapacity = 64
	maxAutoShards    = 1024
)

// Options configures a Cache; it is a plain value that New copies, safe for concurrent reads
// like any value nobody writes. New never fails and never panics: a field out of range means the
// default that the field documents.
type Options struct {
	// Capacity is the most entries the whole cache holds, remembered "not found" answers included.
	// Zero or negative means DefaultCapacity (10,000).
	Capacity int

	// TTL is how long a value stays in the cache after it was set or loaded. Zero or negative
	// means values never expire: they leave only through eviction, Delete or Purge.
	TTL time.Duration

	// NegativeTTL is how long a loader's ErrNotFound is remembered. Zero or negative means not at
	// all: every lookup of a missing key runs the loader.
	NegativeTTL time.Duration

	// RefreshAfter turns on stale-while-revalidate: a Lookup or GetOrLoad that finds a value older
	// than RefreshAfter returns it at once and starts one background load to replace it. Zero or
	// negative, or not less than a positive TTL, turns it off.
	RefreshAfter time.Duration

	// LoadTimeout bounds each load. Zero or negative means no bound of the cache's own: a load
	// ends when its loader returns, or is cancelled by Close.
	LoadTimeout time.Duration

	// Shards is the number of lock stripes, rounded up to a power of two (at most 65,536) and
	// lowered to at most Capacity. Zero or negative means 32 x GOMAXPROCS rounded up to a power of
	// two, at most 1,024, lowered until each shard holds at least 64 entries: with keys spread
	// uniformly, two goroutines then rarely want one lock.
	Shards int

	// OnEvict, if non-nil, is called with each value the cache drops to make room or because it
	// expired; not for Delete, Purge, a value replaced by Set or a load, nor a remembered "not
	// found". It runs with no lock held, on the goroutine that caused the drop (the janitor's for
	// expired entries it sweeps), so it may call the cache. Its arguments are the cache's K and V
	// (Options serves caches of every type, so they arrive as any). Nil means no call.
	OnEvict func(key, value any)

	// Now, if non-nil, is the cache's clock, read on every access that needs the time; tests
	// inject a fake one. It must be safe for concurrent use. Nil means time.Now, read by the
	// janitor into a coarse clock that advances in steps of 1/16 of the shortest positive TTL,
	// NegativeTTL or RefreshAfter, between 1 ms and 1 s: an entry lives its TTL to within a step.
	Now func() time.Time
}

// config is Options after normalisation.
type config[K comparable, V any] struct {
	capacity     int
	shards       int
	ttl          time.Duration
	negativeTTL  time.Duration
	refreshAfter time.Duration
	loadTimeout  time.Duration
	onEvict      func(key, value any)
	now          func() time.Time
}

func configOf[K comparable, V any](o Options) config[K, V] {
	c := config[K, V]{
		capacity:     o.Capacity,
		shards:       o.Shards,
		ttl:          max(o.TTL, 0),
		negativeTTL:  max(o.NegativeTTL, 0),
		refreshAfter: max(o.RefreshAfter, 0),
		loadTimeout:  max(o.LoadTimeout, 0),
		onEvict:      o.OnEvict,
		now:          o.Now,
	}
	if c.capacity <= 0 {
		c.capacity = DefaultCapacity
	}
	if c.ttl > 0 && c.refreshAfter >= c.ttl {
		c.refreshAfter = 0
	}
	auto := c.shards <= 0
	if auto {
		c.shards = min(32*runtime.GOMAXPROCS(0), maxAutoShards)
	}
	c.shards = ceilPow2(c.shards)
	for c.shards > 1 && (c.shards > c.capacity || auto && c.capacity/c.shards < minShardCapacity) {
		c.shards /= 2
	}
	return c
}

// step is how often the janitor wakes: 1/16 of the shortest duration that needs the clock,
// between 1 ms and 1 s. Zero means nothing expires or refreshes, so no janitor is needed.
func (c config[K, V]) step() time.Duration {
	shortest := time.Duration(0)
	for _, d := range []time.Duration{c.ttl, c.negativeTTL, c.refreshAfter} {
		if d > 0 && (shortest == 0 || d < shortest) {
			shortest = d
		}
	}
	if shortest == 0 {
		return 0
	}
	return min(max(shortest/16, time.Millisecond), time.Second)
}

// sweepEvery is how often the janitor walks the shards for expired entries: the shortest TTL,
// between 1 s and 1 min. Reads drop expired entries on their own; the sweep only frees memory.
func (c config[K, V]) sweepEvery() time.Duration {
	shortest := c.ttl
	if c.negativeTTL > 0 && (shortest == 0 || c.negativeTTL < shortest) {
		shortest = c.negativeTTL
	}
	if shortest == 0 {
		return 0
	}
	return min(max(shortest, time.Second), time.Minute)
}

func ceilPow2(n int) int {
	p := 1
	for p < n && p < 1<<16 {
		p <<= 1
	}
	return p
}
