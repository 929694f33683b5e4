package app

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// The Prometheus text format is written by hand: a few dozen lines here
// spare the example a dependency and show every figure that goes out.

// latencyBounds are the upper bounds, in seconds, of the latency buckets.
var latencyBounds = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// httpMetrics counts requests and their latency by route and status. It is
// safe for concurrent use.
type httpMetrics struct {
	mu     sync.RWMutex
	series map[seriesKey]*series

	rateLimited atomic.Uint64
	panics      atomic.Uint64
}

type seriesKey struct {
	route  string
	status int
}

type series struct {
	buckets [len(latencyBounds)]atomic.Uint64 // not cumulative; summed on output
	count   atomic.Uint64
	nanos   atomic.Int64
}

func newHTTPMetrics() *httpMetrics { return &httpMetrics{series: map[seriesKey]*series{}} }

func (m *httpMetrics) observe(route string, status int, d time.Duration) {
	k := seriesKey{route, status}
	m.mu.RLock()
	s := m.series[k]
	m.mu.RUnlock()
	if s == nil {
		m.mu.Lock()
		if s = m.series[k]; s == nil {
			s = &series{}
			m.series[k] = s
		}
		m.mu.Unlock()
	}
	sec := d.Seconds()
	for i, b := range latencyBounds {
		if sec <= b {
			s.buckets[i].Add(1)
			break
		}
	}
	s.count.Add(1)
	s.nanos.Add(int64(d))
}

// promWriter writes metric families in the Prometheus text format.
type promWriter struct {
	w *bufio.Writer
}

func (p promWriter) family(name, typ, help string) {
	p.w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

// sample writes one sample; labels are name, value pairs.
func (p promWriter) sample(name string, v float64, labels ...string) {
	p.w.WriteString(name)
	if len(labels) > 0 {
		p.w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.w.WriteByte(',')
			}
			p.w.WriteString(labels[i] + `="` + labelEscaper.Replace(labels[i+1]) + `"`)
		}
		p.w.WriteByte('}')
	}
	p.w.WriteByte(' ')
	p.w.WriteString(formatFloat(v))
	p.w.WriteByte('\n')
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeMetrics writes the HTTP figures and the router's.
func writeMetrics(out io.Writer, m *httpMetrics, st router.Stats, red Redactor) error {
	p := promWriter{bufio.NewWriter(out)}

	m.mu.RLock()
	keys := make([]seriesKey, 0, len(m.series))
	for k := range m.series {
		keys = append(keys, k)
	}
	m.mu.RUnlock()
	slices.SortFunc(keys, func(a, b seriesKey) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		return a.status - b.status
	})
	get := func(k seriesKey) *series { m.mu.RLock(); defer m.mu.RUnlock(); return m.series[k] }

	p.family("pgshard_http_requests_total", "counter", "HTTP requests served, by route and status.")
	for _, k := range keys {
		p.sample("pgshard_http_requests_total", float64(get(k).count.Load()), "route", k.route, "status", strconv.Itoa(k.status))
	}
	p.family("pgshard_http_request_duration_seconds", "histogram", "HTTP request latency, by route and status.")
	for _, k := range keys {
		s := get(k)
		route, status := k.route, strconv.Itoa(k.status)
		var cum uint64
		for i, b := range latencyBounds {
			cum += s.buckets[i].Load()
			p.sample("pgshard_http_request_duration_seconds_bucket", float64(cum), "route", route, "status", status, "le", formatFloat(b))
		}
		n := s.count.Load()
		p.sample("pgshard_http_request_duration_seconds_bucket", float64(n), "route", route, "status", status, "le", "+Inf")
		p.sample("pgshard_http_request_duration_seconds_sum", time.Duration(s.nanos.Load()).Seconds(), "route", route, "status", status)
		p.sample("pgshard_http_request_duration_seconds_count", float64(n), "route", route, "status", status)
	}
	p.family("pgshard_http_rate_limited_total", "counter", "Requests refused with 429 by the per-IP rate limit.")
	p.sample("pgshard_http_rate_limited_total", float64(m.rateLimited.Load()))
	p.family("pgshard_http_panics_total", "counter", "Handler panics recovered and answered 500.")
	p.sample("pgshard_http_panics_total", float64(m.panics.Load()))

	writeShardMetrics(p, st, red)
	writeCacheMetrics(p, st)
	writeProcessMetrics(p)
	return p.w.Flush()
}

func writeShardMetrics(p promWriter, st router.Stats, red Redactor) {
	shardGauges := []struct {
		name, typ, help string
		v               func(router.ShardStats) float64
	}{
		{"pgshard_shard_primary_up", "gauge", "1 when the shard has a write target.", func(s router.ShardStats) float64 { return b2f(s.Replica.Primary != "") }},
		{"pgshard_shard_split_brain", "gauge", "1 when several nodes report primary (writes refused).", func(s router.ShardStats) float64 { return b2f(s.Replica.SplitBrain) }},
		{"pgshard_shard_rejected_reads_total", "counter", "Reads refused because no replica was eligible.", func(s router.ShardStats) float64 { return float64(s.Replica.RejectedReads) }},
		{"pgshard_cache_listener_up", "gauge", "1 while the shard's cache invalidation listener is connected.", func(s router.ShardStats) float64 { return b2f(s.Listening) }},
		{"pgshard_cache_invalidations_received_total", "counter", "Cache keys dropped on invalidations received from the shard.", func(s router.ShardStats) float64 { return float64(s.Invalidations) }},
		{"pgshard_cache_listener_connects_total", "counter", "Cache listener connections made (each purges the caches).", func(s router.ShardStats) float64 { return float64(s.Reconnects) }},
	}
	for _, g := range shardGauges {
		p.family(g.name, g.typ, g.help)
		for _, s := range st.Shards {
			p.sample(g.name, g.v(s), "shard", s.Name, "range", s.Range)
		}
	}
	nodeGauges := []struct {
		name, typ, help string
		v               func(replica.NodeStats) float64
	}{
		{"pgshard_node_up", "gauge", "1 when the node's last check succeeded.", func(n replica.NodeStats) float64 { return b2f(n.Error == "" && n.Reason != replica.ReasonUnreachable) }},
		{"pgshard_node_eligible", "gauge", "1 when the replica may serve reads now.", func(n replica.NodeStats) float64 { return b2f(n.Eligible) }},
		{"pgshard_node_lag_seconds", "gauge", "How old the replica's data was at its last check.", func(n replica.NodeStats) float64 { return n.Lag.Seconds() }},
		{"pgshard_node_lag_bytes", "gauge", "How far the replica's replay trails the primary's WAL.", func(n replica.NodeStats) float64 { return float64(n.LagBytes) }},
		{"pgshard_node_outstanding_queries", "gauge", "Queries in flight on the node.", func(n replica.NodeStats) float64 { return float64(n.Outstanding) }},
		{"pgshard_node_reads_total", "counter", "Reads served by the node.", func(n replica.NodeStats) float64 { return float64(n.Reads) }},
		{"pgshard_node_writes_total", "counter", "Writes served by the node.", func(n replica.NodeStats) float64 { return float64(n.Writes) }},
		{"pgshard_node_fallbacks_total", "counter", "Reads the node served as the primary fallback.", func(n replica.NodeStats) float64 { return float64(n.Fallbacks) }},
		{"pgshard_node_failures_total", "counter", "Connection failures seen by queries on the node.", func(n replica.NodeStats) float64 { return float64(n.Failures) }},
		{"pgshard_node_pool_connections", "gauge", "Open connections in the node's pool.", func(n replica.NodeStats) float64 { return float64(n.Pool.Total) }},
		{"pgshard_node_pool_acquired_connections", "gauge", "Connections in use in the node's pool.", func(n replica.NodeStats) float64 { return float64(n.Pool.Acquired) }},
		{"pgshard_node_pool_max_connections", "gauge", "The node's pool size.", func(n replica.NodeStats) float64 { return float64(n.Pool.Max) }},
	}
	for _, g := range nodeGauges {
		p.family(g.name, g.typ, g.help)
		for _, s := range st.Shards {
			for _, n := range s.Replica.Nodes {
				p.sample(g.name, g.v(n), "shard", s.Name, "node", red.String(n.Addr), "role", n.Role.String())
			}
		}
	}
}

func writeCacheMetrics(p promWriter, st router.Stats) {
	counters := []struct {
		name, typ, help string
		v               func(router.CacheStats) float64
	}{
		{"pgshard_cache_hits_total", "counter", "Cache lookups answered from the cache.", func(c router.CacheStats) float64 { return float64(c.Hits) }},
		{"pgshard_cache_misses_total", "counter", "Cache lookups that loaded.", func(c router.CacheStats) float64 { return float64(c.Misses) }},
		{"pgshard_cache_evictions_total", "counter", "Entries dropped to make room.", func(c router.CacheStats) float64 { return float64(c.Evictions) }},
		{"pgshard_cache_expirations_total", "counter", "Entries dropped because their TTL passed.", func(c router.CacheStats) float64 { return float64(c.Expirations) }},
		{"pgshard_cache_deletes_total", "counter", "Entries dropped by invalidations and purges.", func(c router.CacheStats) float64 { return float64(c.Invalidations) }},
		{"pgshard_cache_load_errors_total", "counter", "Loads that failed.", func(c router.CacheStats) float64 { return float64(c.LoadErrors) }},
		{"pgshard_cache_entries", "gauge", "Entries held.", func(c router.CacheStats) float64 { return float64(c.Entries) }},
	}
	for _, c := range counters {
		p.family(c.name, c.typ, c.help)
		for _, cs := range st.Caches {
			p.sample(c.name, c.v(cs), "cache", cs.Name)
		}
	}
}
