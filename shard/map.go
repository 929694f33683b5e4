package shard

import (
	"cmp"
	"fmt"
	"slices"
)

// Map assigns every keyspace ID to exactly one named shard. It is immutable
// once built and safe for concurrent use.
type Map struct {
	starts []ID     // starts[i] is the first ID of shard i, ascending; starts[0] == 0
	names  []string // names[i] owns [starts[i], starts[i+1])
	ranges map[string]Range

	// buckets narrows the search: the top bits of an ID pick a bucket, and
	// buckets[b] is the index of the shard owning bucket b's first ID, so the
	// owner of any ID in bucket b lies in [buckets[b], buckets[b+1]]. For
	// evenly sized shards that leaves one or two candidates, and no
	// unpredictable branches on the hot path.
	buckets []uint32
	shift   uint
}

// bucketBits sizes the bucket table: about four buckets a shard, at most 2^16.
func bucketBits(shards int) uint {
	b := uint(2)
	for 1<<b < 4*shards && b < 16 {
		b++
	}
	return b
}

// NewMap builds a map from shard names to their ranges. The ranges must cover
// the keyspace with no gap and no overlap; otherwise the error names the gap
// or the two shards that overlap.
func NewMap(assign map[string]Range) (*Map, error) {
	if len(assign) == 0 {
		return nil, fmt.Errorf("%w: no shards", ErrInvalidMap)
	}
	type entry struct {
		name string
		r    Range
	}
	entries := make([]entry, 0, len(assign))
	for name, r := range assign {
		if name == "" {
			return nil, fmt.Errorf("%w: a shard with range %s has an empty name", ErrInvalidMap, r)
		}
		if !r.Valid() {
			return nil, fmt.Errorf("%w: shard %q: range %s is empty or inverted", ErrInvalidMap, name, r)
		}
		entries = append(entries, entry{name, r})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.r.Start, b.r.Start), cmp.Compare(a.name, b.name))
	})

	if first := entries[0]; first.r.Start != 0 {
		return nil, fmt.Errorf("%w: gap %s: no shard owns the start of the keyspace", ErrInvalidMap, Range{End: first.r.Start})
	}
	for i := 1; i < len(entries); i++ {
		prev, cur := entries[i-1], entries[i]
		switch {
		case prev.r.End == 0 || prev.r.End > cur.r.Start:
			over := Range{Start: cur.r.Start, End: minEnd(prev.r.End, cur.r.End)}
			return nil, fmt.Errorf("%w: shards %q (%s) and %q (%s) overlap on %s", ErrInvalidMap, prev.name, prev.r, cur.name, cur.r, over)
		case prev.r.End < cur.r.Start:
			return nil, fmt.Errorf("%w: gap %s between shards %q (%s) and %q (%s)", ErrInvalidMap, Range{Start: prev.r.End, End: cur.r.Start}, prev.name, prev.r, cur.name, cur.r)
		}
	}
	if last := entries[len(entries)-1]; last.r.End != 0 {
		return nil, fmt.Errorf("%w: gap %s: no shard owns the end of the keyspace", ErrInvalidMap, Range{Start: last.r.End})
	}

	m := &Map{
		starts: make([]ID, len(entries)),
		names:  make([]string, len(entries)),
		ranges: make(map[string]Range, len(entries)),
	}
	for i, e := range entries {
		m.starts[i], m.names[i], m.ranges[e.name] = e.r.Start, e.name, e.r
	}
	bits := bucketBits(len(entries))
	m.shift = 64 - bits
	m.buckets = make([]uint32, 1<<bits+1)
	owner := 0
	for b := range 1 << bits {
		first := ID(uint64(b) << m.shift)
		for owner+1 < len(m.starts) && m.starts[owner+1] <= first {
			owner++
		}
		m.buckets[b] = uint32(owner)
	}
	m.buckets[1<<bits] = uint32(len(m.starts) - 1)
	return m, nil
}

// minEnd returns the smaller of two range ends, where 0 is the keyspace end.
func minEnd(a, b ID) ID {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// Uniform builds a map of len(names) equal ranges, assigned to the names in
// keyspace order: Uniform("a", "b") gives "a" the range -80 and "b" 80-.
func Uniform(names ...string) (*Map, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no shards", ErrInvalidMap)
	}
	ranges := []Range{{}}
	if len(names) > 1 {
		var err error
		if ranges, err = (Range{}).Split(len(names)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidMap, err)
		}
	}
	assign := make(map[string]Range, len(names))
	for i, name := range names {
		if _, dup := assign[name]; dup {
			return nil, fmt.Errorf("%w: shard name %q appears twice", ErrInvalidMap, name)
		}
		assign[name] = ranges[i]
	}
	return NewMap(assign)
}

// Lookup returns the name of the shard that owns id.
func (m *Map) Lookup(id ID) string {
	return m.names[m.index(id)]
}

// Index returns the position, in Shards() order, of the shard that owns id.
func (m *Map) Index(id ID) int {
	return m.index(id)
}

// index finds the last shard whose start is <= id.
func (m *Map) index(id ID) int {
	b := uint64(id) >> m.shift
	// invariant: starts[lo] <= id, and the answer is < hi
	lo, hi := int(m.buckets[b]), int(m.buckets[b+1])+1
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if m.starts[mid] <= id {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// Shards returns the shard names in keyspace order. The slice is a copy.
func (m *Map) Shards() []string {
	return slices.Clone(m.names)
}

// Range returns the range of the named shard, and whether the shard exists.
func (m *Map) Range(name string) (Range, bool) {
	r, ok := m.ranges[name]
	return r, ok
}

// Len returns the number of shards.
func (m *Map) Len() int {
	return len(m.names)
}
