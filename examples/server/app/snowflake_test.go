package app

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
		if id <= last {
			t.Errorf("%s: id %d not above %d", tc.name, id, last)
		}
		last = id
		if node := id >> seqBits & maxNode; node != maxNode {
			t.Errorf("%s: node %d, want %d", tc.name, node, maxNode)
		}
		if seq := id & maxSeq; seq != tc.seq {
			t.Errorf("%s: sequence %d, want %d", tc.name, seq, tc.seq)
		}
	}
	if got := idTime(last); got.Sub(at) < 0 || got.Sub(at) > 2*time.Millisecond {
		t.Errorf("idTime = %v, want about %v", got, at)
	}
}

func TestIDsBorrowTheNextMillisecondWhenTheSequenceRunsOut(t *testing.T) {
	fixed := idEpoch.Add(time.Hour)
	g, _ := newIDGenerator(3, func() time.Time { return fixed })
	seen := map[int64]bool{}
	var last int64
	for range 3 * (maxSeq + 1) {
		id := g.Next()
		if seen[id] || id <= last {
			t.Fatalf("id %d repeated or not growing (last %d)", id, last)
		}
		seen[id], last = true, id
	}
	if d := idTime(last).Sub(fixed); d != 2*time.Millisecond {
		t.Errorf("after 3 x 4096 IDs in one millisecond, the clock borrowed %v, want 2ms", d)
	}
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
				if seen[id] || id <= 0 {
					t.Errorf("id %d repeated or not positive", id)
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
}

func TestIDGeneratorRefusesBadNodes(t *testing.T) {
	for _, n := range []int64{-1, maxNode + 1} {
		if _, err := newIDGenerator(n, nil); err == nil {
			t.Errorf("node %d accepted", n)
		}
	}
}
