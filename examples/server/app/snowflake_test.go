package app

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIDsGrowAndCarryTheirParts(t *testing.T) {
	var now atomic.Int64
	at := idEpoch.Add(1000 * time.Hour)
	now.Store(at.UnixNano())
	g, err := newIDGenerator(maxNode, func() time.Time { return time.Unix(0, now.Load()) })
	require.NoError(t, err)
	tests := []struct {
		name    string
		advance time.Duration // before the call
		seq     int64         // the sequence the ID must carry
	}{
		{"first", 0, 0},
		{"same millisecond", 0, 1},
		{"next millisecond", time.Millisecond, 0},
		{"clock steps back", -5 * time.Millisecond, 1},
		{"clock still behind", time.Millisecond, 2},
	}
	var last int64
	for _, tc := range tests {
		now.Add(int64(tc.advance))
		id := g.Next()
		assert.Greater(t, id, last, "%s: id not above the last", tc.name)
		last = id
		assert.Equal(t, int64(maxNode), id>>seqBits&maxNode, "%s: node", tc.name)
		assert.Equal(t, tc.seq, id&maxSeq, "%s: sequence", tc.name)
	}
	got := idTime(last)
	assert.True(t, got.Sub(at) >= 0 && got.Sub(at) <= 2*time.Millisecond, "idTime = %v, want about %v", got, at)
}

func TestIDsBorrowTheNextMillisecondWhenTheSequenceRunsOut(t *testing.T) {
	fixed := idEpoch.Add(time.Hour)
	g, _ := newIDGenerator(3, func() time.Time { return fixed })
	seen := map[int64]bool{}
	var last int64
	for range 3 * (maxSeq + 1) {
		id := g.Next()
		require.False(t, seen[id] || id <= last, "id %d repeated or not growing (last %d)", id, last)
		seen[id], last = true, id
	}
	assert.Equal(t, 2*time.Millisecond, idTime(last).Sub(fixed), "after 3 x 4096 IDs in one millisecond, the clock borrowed")
}

func TestIDsUniqueAcrossGoroutinesAndNodes(t *testing.T) {
	a, _ := newIDGenerator(1, nil)
	b, _ := newIDGenerator(2, nil)
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for i := range 8 {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Go(func() {
			ids := make([]int64, 2000)
			for j := range ids {
				ids[j] = g.Next()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				assert.False(t, seen[id] || id <= 0, "id %d repeated or not positive", id)
				seen[id] = true
			}
		})
	}
	wg.Wait()
}

func TestIDGeneratorRefusesBadNodes(t *testing.T) {
	for _, n := range []int64{-1, maxNode + 1} {
		_, err := newIDGenerator(n, nil)
		assert.Error(t, err, "node %d accepted", n)
	}
}
