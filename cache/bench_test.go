package cache_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/pgshard/pgshard/cache"
)

// getter is what the benchmarks read from: our Cache and golang-lru's caches alike.
type getter[K comparable] interface {
	Get(K) (int, bool)
}

// impl builds a pre-filled cache of one implementation under test.
type impl[K comparable] struct {
	name string
	new  func(b *testing.B, keys []K) getter[K]
}

func impls[K comparable]() []impl[K] {
	return []impl[K]{
		{"pgshard", func(b *testing.B, keys []K) getter[K] {
			c := cache.New[K, int](cache.Options{Capacity: 2 * len(keys)})
			b.Cleanup(c.Close)
			return fill(c, keys, c.Set)
		}},
		{"pgshard-ttl", func(b *testing.B, keys []K) getter[K] {
			c := cache.New[K, int](cache.Options{Capacity: 2 * len(keys), TTL: time.Hour})
			b.Cleanup(c.Close)
			return fill(c, keys, c.Set)
		}},
		{"golang-lru", func(b *testing.B, keys []K) getter[K] {
			c, _ := lru.New[K, int](2 * len(keys))
			return fill(c, keys, func(k K, v int) { c.Add(k, v) })
		}},
		{"golang-lru-expirable", func(b *testing.B, keys []K) getter[K] {
			// Its goroutine cannot be stopped in v2.0.7; TestMain tells goleak so.
			c := expirable.NewLRU[K, int](2*len(keys), nil, time.Hour)
			return fill(c, keys, func(k K, v int) { c.Add(k, v) })
		}},
	}
}

func fill[K comparable](c getter[K], keys []K, set func(K, int)) getter[K] {
	for i, k := range keys {
		set(k, i)
	}
	for _, k := range keys { // a second read moves every key to the protected segment
		c.Get(k)
	}
	return c
}

func stringKeys(n, size int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%0*d", size, i)
	}
	return keys
}

func int64Keys(n int) []int64 {
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = int64(i) * 7919
	}
	return keys
}

const getKeys = 1 << 10

// BenchmarkGet measures a hit on one goroutine.
func BenchmarkGet(b *testing.B) {
	b.Run("string8", func(b *testing.B) { benchGet(b, stringKeys(getKeys, 8)) })
	b.Run("string32", func(b *testing.B) { benchGet(b, stringKeys(getKeys, 32)) })
	b.Run("int64", func(b *testing.B) { benchGet(b, int64Keys(getKeys)) })
}

func benchGet[K comparable](b *testing.B, keys []K) {
	for _, im := range impls[K]() {
		b.Run(im.name, func(b *testing.B) {
			c := im.new(b, keys)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := c.Get(keys[i&(getKeys-1)]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
	}
}

// BenchmarkParallelGet measures hits from every P at once, keys drawn uniformly.
func BenchmarkParallelGet(b *testing.B) {
	keys := stringKeys(10_000, 16)
	for _, im := range impls[string]() {
		b.Run(im.name, func(b *testing.B) {
			c := im.new(b, keys)
			var seeds atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				x := seeds.Add(1) * 0x9e3779b97f4a7c15
				for pb.Next() {
					x ^= x << 13 // xorshift64: cheaper than any shared source
					x ^= x >> 7
					x ^= x << 17
					c.Get(keys[x%uint64(len(keys))])
				}
			})
		})
	}
}

// BenchmarkZipf replays a Zipf(0.99) stream over 100,000 keys through caches holding 1% of
// them, filling on each miss, and reports the hit ratio.
func BenchmarkZipf(b *testing.B) {
	const keys = 100_000
	stream := zipfStream(keys, 1_000_000, 0.99, 1)
	run := func(b *testing.B, get func(int64) (int, bool), set func(int64, int)) {
		b.ReportAllocs()
		hits, i := 0, 0
		for b.Loop() {
			k := stream[i%len(stream)]
			if _, ok := get(k); ok {
				hits++
			} else {
				set(k, int(k))
			}
			i++
		}
		b.ReportMetric(float64(hits)/float64(i), "hit-ratio")
	}
	b.Run("pgshard", func(b *testing.B) {
		c := cache.New[int64, int](cache.Options{Capacity: keys / 100})
		defer c.Close()
		run(b, c.Get, c.Set)
	})
	b.Run("golang-lru", func(b *testing.B) {
		c, _ := lru.New[int64, int](keys / 100)
		run(b, c.Get, func(k int64, v int) { c.Add(k, v) })
	})
}
