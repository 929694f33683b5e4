package router

import (
	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/replica"
)

// Stats is a snapshot of every shard, node and cache. It holds no
// credentials: nodes are named by host, port and database. Reading it is
// cheap, so a metrics endpoint can call Router.Stats on every scrape; that
// is how to hook pgshard into any metrics library.
type Stats struct {
	Shards []ShardStats
	Caches []CacheStats
	// Map is the shard map in use: its version and where it came from.
	Map MapStats
}

// ShardStats is one shard.
type ShardStats struct {
	Name          string
	Range         string
	Replica       replica.Stats // primary, nodes, lag, eligibility, pools
	Listening     bool          // the cache listener is up (cached reads use the cache)
	Invalidations uint64        // cache keys dropped on notifications from this shard
	Reconnects    uint64        // listener connections made (the first included)
	Floor         replica.LSN   // cache loads read at or past this position
	ListenerPID   uint32        // the listener's backend on the primary (pg_stat_activity.pid), 0 while down
}

// CacheStats is one cache made with NewCache.
type CacheStats struct {
	Name string
	cache.Stats
}

// Stats returns a snapshot of the router.
func (r *Router) Stats() Stats {
	var st Stats
	st.Map = r.mapStats()
	for _, s := range r.current().shards {
		st.Shards = append(st.Shards, ShardStats{
			Name:          s.name,
			Range:         s.rng.String(),
			Replica:       s.set.Stats(),
			Listening:     s.listening.Load(),
			Invalidations: s.invalidations.Load(),
			Reconnects:    s.reconnects.Load(),
			ListenerPID:   s.listenerPID.Load(),
			Floor:         replica.LSN(s.floor.Load()),
		})
	}
	for _, c := range r.cachesNow() {
		name, cs := c.stats()
		st.Caches = append(st.Caches, CacheStats{Name: name, Stats: cs})
	}
	return st
}
