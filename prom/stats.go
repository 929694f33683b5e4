package prom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// Stats is a prometheus.Collector over a Router's Stats: every scrape
// takes one snapshot. It is safe for concurrent use.
type Stats struct {
	r    *router.Router
	node func(addr string) string

	shard []shardMetric
	nodes []nodeMetric
	cache []cacheMetric
	maps  []mapMetric
}

type mapMetric struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	v    func(router.MapStats) (float64, bool) // false: not sent
}

// StatsOptions tune a Stats collector; the zero value works.
type StatsOptions struct {
	// NodeLabel turns a node's address (host:port/database) into its "node"
	// label. Nil keeps the address.
	NodeLabel func(addr string) string
}

type shardMetric struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	v    func(router.ShardStats) float64
}

type nodeMetric struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	v    func(replica.NodeStats) float64
}

type cacheMetric struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	v    func(router.CacheStats) float64
}

// NewStats returns a collector over r's Stats.
func NewStats(r *router.Router, o StatsOptions) *Stats {
	node := o.NodeLabel
	if node == nil {
		node = func(a string) string { return a }
	}
	sl := []string{"shard", "range"}
	nl := []string{"shard", "node", "role"}
	cl := []string{"cache"}
	d := prometheus.NewDesc
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	return &Stats{r: r, node: node,
		shard: []shardMetric{
			{d("pgshard_shard_primary_up", "1 when the shard has a write target.", sl, nil), gauge,
				func(s router.ShardStats) float64 { return b2f(s.Replica.Primary != "") }},
			{d("pgshard_shard_split_brain", "1 when several nodes report primary (writes refused).", sl, nil), gauge,
				func(s router.ShardStats) float64 { return b2f(s.Replica.SplitBrain) }},
			{d("pgshard_shard_rejected_reads_total", "Reads refused because no replica was eligible and the policy forbade the primary.", sl, nil), counter,
				func(s router.ShardStats) float64 { return float64(s.Replica.RejectedReads) }},
			{d("pgshard_cache_listener_up", "1 while the shard's cache invalidation listener is connected.", sl, nil), gauge,
				func(s router.ShardStats) float64 { return b2f(s.Listening) }},
			{d("pgshard_cache_invalidations_received_total", "Cache keys named by invalidations received from the shard (each notification names the keys one transaction changed; a key may be held by no cache).", sl, nil), counter,
				func(s router.ShardStats) float64 { return float64(s.Invalidations) }},
			{d("pgshard_cache_listener_connects_total", "Cache listener connections made, the first included (each purges the caches).", sl, nil), counter,
				func(s router.ShardStats) float64 { return float64(s.Reconnects) }},
		},
		nodes: []nodeMetric{
			{d("pgshard_node_up", "1 when the node's last check succeeded.", nl, nil), gauge,
				func(n replica.NodeStats) float64 { return b2f(n.Error == "" && n.Reason != replica.ReasonUnreachable) }},
			{d("pgshard_node_eligible", "1 when the replica may serve reads now.", nl, nil), gauge,
				func(n replica.NodeStats) float64 { return b2f(n.Eligible) }},
			{d("pgshard_node_lag_seconds", "How old the replica's data was at its last check.", nl, nil), gauge,
				func(n replica.NodeStats) float64 { return n.Lag.Seconds() }},
			{d("pgshard_node_lag_bytes", "How far the replica's replay trails the primary's WAL.", nl, nil), gauge,
				func(n replica.NodeStats) float64 { return float64(n.LagBytes) }},
			{d("pgshard_node_last_check_timestamp_seconds", "When the node was last checked, in Unix seconds.", nl, nil), gauge,
				func(n replica.NodeStats) float64 { return float64(n.LastCheck.UnixNano()) / 1e9 }},
			{d("pgshard_node_outstanding_queries", "Queries in flight on the node.", nl, nil), gauge,
				func(n replica.NodeStats) float64 { return float64(n.Outstanding) }},
			{d("pgshard_node_reads_total", "Reads served by the node (a primary counts its fallbacks here too).", nl, nil), counter,
				func(n replica.NodeStats) float64 { return float64(n.Reads) }},
			{d("pgshard_node_writes_total", "Writes served by the node.", nl, nil), counter,
				func(n replica.NodeStats) float64 { return float64(n.Writes) }},
			{d("pgshard_node_fallbacks_total", "Reads that asked for a replica and were served by this primary.", nl, nil), counter,
				func(n replica.NodeStats) float64 { return float64(n.Fallbacks) }},
			{d("pgshard_node_failures_total", "Connection failures seen by queries on the node.", nl, nil), counter,
				func(n replica.NodeStats) float64 { return float64(n.Failures) }},
			{d("pgshard_node_pool_connections", "Open connections in the node's pool.", nl, nil), gauge,
				func(n replica.NodeStats) float64 { return float64(n.Pool.Total) }},
			{d("pgshard_node_pool_acquired_connections", "Connections in use in the node's pool.", nl, nil), gauge,
				func(n replica.NodeStats) float64 { return float64(n.Pool.Acquired) }},
			{d("pgshard_node_pool_max_connections", "The node's pool size.", nl, nil), gauge,
				func(n replica.NodeStats) float64 { return float64(n.Pool.Max) }},
		},
		maps: []mapMetric{
			{d("pgshard_map_version", "The topology store's version of the shard map in use (0 for a static map).", nil, nil), gauge,
				func(m router.MapStats) (float64, bool) { return float64(m.Version), true }},
			{d("pgshard_map_changed_timestamp_seconds", "When the store recorded the map in use, in Unix seconds.", nil, nil), gauge,
				func(m router.MapStats) (float64, bool) {
					return float64(m.Changed.UnixNano()) / 1e9, m.Following
				}},
			{d("pgshard_map_control_up", "1 when the last read of the topology store succeeded; 0 while the router serves its last map without it.", nil, nil), gauge,
				func(m router.MapStats) (float64, bool) { return b2f(m.ControlError == ""), m.Following }},
		},
		cache: []cacheMetric{
			{d("pgshard_cache_hits_total", "Cache lookups answered from the cache.", cl, nil), counter,
				func(c router.CacheStats) float64 { return float64(c.Hits) }},
			{d("pgshard_cache_misses_total", "Cache lookups that loaded.", cl, nil), counter,
				func(c router.CacheStats) float64 { return float64(c.Misses) }},
			{d("pgshard_cache_evictions_total", "Entries dropped to make room.", cl, nil), counter,
				func(c router.CacheStats) float64 { return float64(c.Evictions) }},
			{d("pgshard_cache_expirations_total", "Entries dropped because their TTL passed.", cl, nil), counter,
				func(c router.CacheStats) float64 { return float64(c.Expirations) }},
			{d("pgshard_cache_deletes_total", "Entries this cache dropped on invalidations and purges (only keys it held).", cl, nil), counter,
				func(c router.CacheStats) float64 { return float64(c.Invalidations) }},
			{d("pgshard_cache_load_errors_total", "Loads that failed.", cl, nil), counter,
				func(c router.CacheStats) float64 { return float64(c.LoadErrors) }},
			{d("pgshard_cache_entries", "Entries held.", cl, nil), gauge,
				func(c router.CacheStats) float64 { return float64(c.Entries) }},
		},
	}
}

// Describe sends every metric's description.
func (s *Stats) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range s.shard {
		ch <- m.desc
	}
	for _, m := range s.nodes {
		ch <- m.desc
	}
	for _, m := range s.cache {
		ch <- m.desc
	}
	for _, m := range s.maps {
		ch <- m.desc
	}
}

// Collect sends one snapshot of the router's Stats.
func (s *Stats) Collect(ch chan<- prometheus.Metric) {
	st := s.r.Stats()
	for _, m := range s.shard {
		for _, sh := range st.Shards {
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.v(sh), sh.Name, sh.Range)
		}
	}
	for _, m := range s.nodes {
		for _, sh := range st.Shards {
			for _, n := range sh.Replica.Nodes {
				ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.v(n), sh.Name, s.node(n.Addr), n.Role.String())
			}
		}
	}
	for _, m := range s.cache {
		for _, c := range st.Caches {
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.v(c), c.Name)
		}
	}
	for _, m := range s.maps {
		if v, ok := m.v(st.Map); ok {
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, v)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
