package app

import (
	"fmt"
	"sync"
	"time"
)

// Snowflake-style IDs: 41 bits of milliseconds since idEpoch, 10 bits of
// node ID, 12 bits of sequence, with the sign bit clear. IDs from one
// generator only grow; IDs from generators with different node IDs never
// collide; IDs from different instances sort by creation time to within a
// millisecond and the clocks' skew. 2^41 ms is about 69 years.
const (
	nodeBits = 10
	seqBits  = 12
	maxNode  = 1<<nodeBits - 1
	maxSeq   = 1<<seqBits - 1
)

// idEpoch is 2025-01-01T00:00:00Z.
var idEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// idGenerator makes unique, time-ordered 64-bit IDs without coordination.
// It is safe for concurrent use.
type idGenerator struct {
	node int64
	now  func() time.Time

	mu   sync.Mutex
	last int64 // milliseconds since idEpoch of the last ID
	seq  int64
}

// newIDGenerator returns a generator for node (0 to 1023); now nil means time.Now.
func newIDGenerator(node int64, now func() time.Time) (*idGenerator, error) {
	if node < 0 || node > maxNode {
		return nil, fmt.Errorf("node ID %d: want 0 to %d", node, maxNode)
	}
	if now == nil {
		now = time.Now
	}
	return &idGenerator{node: node, now: now}, nil
}

// Next returns a new ID. It never blocks: when the clock steps back, or
// more than 4096 IDs are asked for in one millisecond, it borrows the next
// millisecond, so IDs still grow, and the clock catches up.
func (g *idGenerator) Next() int64 {
	ms := g.now().Sub(idEpoch).Milliseconds()
	g.mu.Lock()
	defer g.mu.Unlock()
	if ms > g.last {
		g.last, g.seq = ms, 0
	} else if g.seq++; g.seq > maxSeq {
		g.last, g.seq = g.last+1, 0
	}
	return g.last<<(nodeBits+seqBits) | g.node<<seqBits | g.seq
}

// idTime returns the creation time an ID carries.
func idTime(id int64) time.Time {
	return idEpoch.Add(time.Duration(id>>(nodeBits+seqBits)) * time.Millisecond)
}
