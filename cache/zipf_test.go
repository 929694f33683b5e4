package cache_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/stretchr/testify/assert"

	"github.com/pgshard/pgshard/cache"
)

// zipfStream returns n requests over keys 0..keys-1 whose popularity follows Zipf with exponent
// s (math/rand's Zipf needs s > 1; the usual cache workload has 0.99). Ranks are shuffled over
// the keys so that the hottest keys are not also the smallest.
func zipfStream(keys, n int, s float64, seed uint64) []int64 {
	cdf := make([]float64, keys)
	sum := 0.0
	for i := range cdf {
		sum += 1 / math.Pow(float64(i+1), s)
		cdf[i] = sum
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	perm := r.Perm(keys)
	out := make([]int64, n)
	for i := range out {
		rank, _ := slices.BinarySearch(cdf, r.Float64()*sum)
		out[i] = int64(perm[min(rank, keys-1)])
	}
	return out
}

// hitRatio replays stream through a cache that is filled on each miss.
func hitRatio(stream []int64, get func(int64) (int, bool), set func(int64, int)) float64 {
	hits := 0
	for _, k := range stream {
		if _, ok := get(k); ok {
			hits++
		} else {
			set(k, int(k))
		}
	}
	return float64(hits) / float64(len(stream))
}

func TestZipfHitRatioAtLeastLRU(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a long request stream")
	}
	const keys = 20_000
	stream := zipfStream(keys, 400_000, 0.99, 1)
	for _, shards := range []int{0, 1, 16} {
		c := cache.New[int64, int](cache.Options{Capacity: keys / 100, Shards: shards})
		ours := hitRatio(stream, c.Get, c.Set)
		c.Close()
		l, _ := lru.New[int64, int](keys / 100)
		theirs := hitRatio(stream, l.Get, func(k int64, v int) { l.Add(k, v) })
		assert.GreaterOrEqual(t, ours, theirs,
			"Shards %d: hit ratio %.4f; golang-lru's %.4f on the same stream", shards, ours, theirs)
		t.Logf("Shards %d: hit ratio %.4f, golang-lru %.4f", shards, ours, theirs)
	}
}
