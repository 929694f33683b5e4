package cache_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/cache"
)

type strCache = cache.Cache[string, int]

func set(k string, v int) func(*strCache) { return func(c *strCache) { c.Set(k, v) } }
func del(k string) func(*strCache)        { return func(c *strCache) { c.Delete(k) } }
func purge() func(*strCache)              { return func(c *strCache) { c.Purge() } }

func TestOperations(t *testing.T) {
	tests := []struct {
		name    string
		ops     []func(*strCache)
		want    map[string]int // keys that Get must find, with their values
		absent  []string       // keys that Get must miss
		wantLen int
	}{
		{name: "empty", absent: []string{"a", ""}},
		{name: "set then get", ops: []func(*strCache){set("a", 1)}, want: map[string]int{"a": 1}, wantLen: 1},
		{name: "empty key and zero value", ops: []func(*strCache){set("", 0)}, want: map[string]int{"": 0}, wantLen: 1},
		{name: "overwrite", ops: []func(*strCache){set("a", 1), set("a", 2)}, want: map[string]int{"a": 2}, wantLen: 1},
		{name: "delete", ops: []func(*strCache){set("a", 1), set("b", 2), del("a")}, want: map[string]int{"b": 2}, absent: []string{"a"}, wantLen: 1},
		{name: "delete missing", ops: []func(*strCache){set("a", 1), del("z")}, want: map[string]int{"a": 1}, wantLen: 1},
		{name: "delete twice", ops: []func(*strCache){set("a", 1), del("a"), del("a")}, absent: []string{"a"}},
		{name: "purge", ops: []func(*strCache){set("a", 1), set("b", 2), purge()}, absent: []string{"a", "b"}},
		{name: "purge empty", ops: []func(*strCache){purge(), purge()}, absent: []string{"a"}},
		{name: "set after purge", ops: []func(*strCache){set("a", 1), purge(), set("b", 2)}, want: map[string]int{"b": 2}, absent: []string{"a"}, wantLen: 1},
		{name: "set after delete", ops: []func(*strCache){set("a", 1), del("a"), set("a", 3)}, want: map[string]int{"a": 3}, wantLen: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache.New[string, int](cache.Options{Capacity: 100})
			defer c.Close()
			for _, op := range tt.ops {
				op(c)
			}
			for k, want := range tt.want {
				got, ok := c.Get(k)
				assert.True(t, ok, "Get(%q) missed", k)
				assert.Equal(t, want, got, "Get(%q)", k)
			}
			for _, k := range tt.absent {
				got, ok := c.Get(k)
				assert.False(t, ok, "Get(%q) = %d, true; want a miss", k, got)
			}
			assert.Equal(t, tt.wantLen, c.Len(), "Len()")
		})
	}
}

func TestCapacity(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		shards   int
		want     int
	}{
		{"zero means default", 0, 0, cache.DefaultCapacity},
		{"negative means default", -5, 0, cache.DefaultCapacity},
		{"one", 1, 0, 1},
		{"one with many shards", 1, 64, 1},
		{"not a multiple of the shards", 1000, 0, 1000},
		{"fewer than the shards asked for", 5, 16, 5},
		{"shards not a power of two", 100, 3, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache.New[int, int](cache.Options{Capacity: tt.capacity, Shards: tt.shards})
			defer c.Close()
			// Keys spread over the shards by hash: overfill enough that every shard is full.
			inserted := 2*tt.want + 500
			for i := range inserted {
				c.Set(i, i)
			}
			assert.Equal(t, tt.want, c.Len(), "Len() after overfilling")
			assert.Equal(t, uint64(inserted-tt.want), c.Stats().Evictions, "Stats().Evictions")
		})
	}
}

func TestEvictionOrder(t *testing.T) {
	tests := []struct {
		name        string
		capacity    int
		ops         []func(*strCache)
		wantEvicted []string
	}{
		{
			name:        "least recently set goes first",
			capacity:    3,
			ops:         []func(*strCache){set("a", 1), set("b", 2), set("c", 3), set("d", 4), set("e", 5)},
			wantEvicted: []string{"a", "b"},
		},
		{
			name:        "a read saves a key",
			capacity:    3,
			ops:         []func(*strCache){set("a", 1), set("b", 2), set("c", 3), get("a"), set("d", 4)},
			wantEvicted: []string{"b"},
		},
		{
			name:     "overwrite does not evict",
			capacity: 2,
			ops:      []func(*strCache){set("a", 1), set("b", 2), set("a", 3), set("b", 4)},
		},
		{
			name:     "keys read twice survive a scan",
			capacity: 10,
			ops: append([]func(*strCache){set("hot1", 1), set("hot2", 2), get("hot1"), get("hot2")},
				scan("cold", 30)...),
			wantEvicted: coldKeys("cold", 22),
		},
		{
			name:     "with every key read, the first promoted goes first, then newcomers",
			capacity: 5,
			ops: []func(*strCache){set("a", 1), set("b", 2), set("c", 3), set("d", 4), set("e", 5),
				get("a"), get("b"), get("c"), get("d"), get("e"), set("f", 6), set("g", 7)},
			wantEvicted: []string{"a", "f"},
		},
		{
			name:     "deleted keys are not reported",
			capacity: 2,
			ops:      []func(*strCache){set("a", 1), del("a"), set("b", 2), set("c", 3)},
		},
		{
			name:        "purged keys are not reported",
			capacity:    2,
			ops:         []func(*strCache){set("a", 1), set("b", 2), purge(), set("c", 3), set("d", 4), set("e", 5)},
			wantEvicted: []string{"c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log evictLog
			c := cache.New[string, int](cache.Options{Capacity: tt.capacity, Shards: 1, OnEvict: log.record})
			defer c.Close()
			for _, op := range tt.ops {
				op(c)
			}
			assert.Equal(t, tt.wantEvicted, log.get(), "evicted keys, in order")
		})
	}
}

func get(k string) func(*strCache) { return func(c *strCache) { c.Get(k) } }

func scan(prefix string, n int) []func(*strCache) {
	var ops []func(*strCache)
	for i := range n {
		ops = append(ops, set(fmt.Sprintf("%s%02d", prefix, i), i))
	}
	return ops
}

func coldKeys(prefix string, n int) []string {
	var keys []string
	for i := range n {
		keys = append(keys, fmt.Sprintf("%s%02d", prefix, i))
	}
	return keys
}

func TestTTL(t *testing.T) {
	const ttl = time.Minute
	tests := []struct {
		name    string
		advance time.Duration
		wantHit bool
	}{
		{"fresh", 0, true},
		{"just before expiry", ttl - time.Nanosecond, true},
		{"at expiry", ttl, false},
		{"long after", 10 * ttl, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var log evictLog
			c := cache.New[string, int](cache.Options{Capacity: 10, TTL: ttl, Now: clock.Now, OnEvict: log.record})
			defer c.Close()
			c.Set("a", 1)
			clock.Advance(tt.advance)
			got, ok := c.Get("a")
			require.Equal(t, tt.wantHit, ok, "Get after %v hit", tt.advance)
			if tt.wantHit {
				require.Equal(t, 1, got, "Get after %v", tt.advance)
			} else {
				// The entry went either on this Get or in a janitor sweep: once, either way.
				assert.Equal(t, []string{"a"}, log.get(), "OnEvict saw")
				st := c.Stats()
				assert.Equal(t, uint64(1), st.Expirations, "Stats().Expirations in %+v", st)
				assert.Equal(t, 0, st.Entries, "Stats().Entries in %+v", st)
			}
		})
	}
}

func TestSetRenewsTTL(t *testing.T) {
	clock := newFakeClock()
	c := cache.New[string, int](cache.Options{TTL: time.Minute, Now: clock.Now})
	defer c.Close()
	c.Set("a", 1)
	clock.Advance(50 * time.Second)
	c.Set("a", 2)
	clock.Advance(50 * time.Second)
	got, ok := c.Get("a")
	require.True(t, ok, "Get missed")
	require.Equal(t, 2, got, "Get")
}

func TestJanitorSweeps(t *testing.T) {
	clock := newFakeClock()
	var log evictLog
	c := cache.New[string, int](cache.Options{TTL: 10 * time.Millisecond, Now: clock.Now, OnEvict: log.record})
	defer c.Close()
	c.Set("a", 1)
	c.Set("b", 2)
	clock.Advance(2 * time.Second) // past the TTL and the janitor's sweep period, which is at least 1 s
	eventually(t, "the janitor to sweep", func() bool { return c.Len() == 0 })
	assert.ElementsMatch(t, []string{"a", "b"}, log.get(), "OnEvict saw")
}

func TestCoarseClockExpires(t *testing.T) {
	c := cache.New[string, int](cache.Options{TTL: 5 * time.Millisecond})
	defer c.Close()
	c.Set("a", 1)
	_, ok := c.Get("a")
	require.True(t, ok, "Get right after Set missed")
	eventually(t, "the entry to expire", func() bool { _, ok := c.Get("a"); return !ok })
}

func TestStats(t *testing.T) {
	clock := newFakeClock()
	c := cache.New[string, int](cache.Options{Capacity: 2, Shards: 1, TTL: time.Minute, Now: clock.Now})
	defer c.Close()
	c.Set("a", 1)
	c.Get("a")    // hit
	c.Get("zz")   // miss
	c.Set("b", 2) //
	c.Set("c", 3) // evicts b
	c.Delete("c") // invalidation
	c.Purge()     // invalidation
	c.Set("d", 4) //
	clock.Advance(time.Hour)
	c.Get("d") // expired: miss
	want := cache.Stats{Hits: 1, Misses: 2, Evictions: 1, Expirations: 1, Invalidations: 2, Entries: 0}
	assert.Equal(t, want, c.Stats(), "Stats()")
	assert.Equal(t, 1.0/3, want.HitRatio(), "HitRatio()")
	assert.Equal(t, 0.0, (cache.Stats{}).HitRatio(), "zero Stats HitRatio()")
}

func TestOnEvictMayCallTheCache(t *testing.T) {
	var c *strCache
	c = cache.New[string, int](cache.Options{Capacity: 1, OnEvict: func(k, v any) {
		c.Get(k.(string))
		c.Delete("nothing")
	}})
	defer c.Close()
	c.Set("a", 1)
	c.Set("b", 2) // would deadlock if OnEvict ran under the shard's lock
}

func TestClose(t *testing.T) {
	c := cache.New[string, int](cache.Options{TTL: time.Second, NegativeTTL: time.Second})
	c.Set("a", 1)
	c.Close()
	c.Close() // idempotent
	_, ok := c.Get("a")
	assert.False(t, ok, "Get after Close hit")
	c.Set("b", 2)
	assert.Equal(t, 0, c.Len(), "Len after Close and Set")
}
