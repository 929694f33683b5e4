package cache

// Stats is a snapshot of a cache's counters since New; it is a plain value, safe to copy and to
// read from any goroutine.
type Stats struct {
	Hits          uint64 // lookups answered from the cache (for Lookup and GetOrLoad, remembered "not found" too)
	Misses        uint64 // lookups that were not
	Loads         uint64 // loads that returned, refreshes included
	LoadErrors    uint64 // loads that failed with an error other than ErrNotFound
	Evictions     uint64 // entries dropped to make room
	Expirations   uint64 // entries dropped because their TTL had passed
	Invalidations uint64 // Delete calls that dropped an entry or a load in flight, and Purge calls
	Entries       int    // entries held when the snapshot was taken, as Len
}

// HitRatio returns Hits / (Hits + Misses), or 0 before the first lookup.
func (s Stats) HitRatio() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// counters are one shard's share of Stats, guarded by the shard's lock so that a hit costs no
// atomic operation on a shared cache line.
type counters struct {
	hits, misses, loads, loadErrors, evictions, expirations, invalidations uint64
}

// Stats returns the cache's counters, summed over its shards one at a time: the sum is not one
// atomic snapshot while other goroutines use the cache.
func (c *Cache[K, V]) Stats() Stats {
	st := Stats{Invalidations: c.purges.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.sync(c)
		n := s.n
		st.Entries += s.lru.len()
		s.mu.Unlock()
		st.Hits += n.hits
		st.Misses += n.misses
		st.Loads += n.loads
		st.LoadErrors += n.loadErrors
		st.Evictions += n.evictions
		st.Expirations += n.expirations
		st.Invalidations += n.invalidations
	}
	return st
}
