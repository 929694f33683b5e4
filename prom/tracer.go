package prom

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgshard/pgshard/replica"
)

// Tracer is a replica.Tracer that counts the library's events, and the
// prometheus.Collector of those counts. Set it in router.Config.Tracer (or
// replica.Options.Tracer) before Open, and register it. It is safe for
// concurrent use.
type Tracer struct {
	reads     *prometheus.CounterVec
	readTime  *prometheus.HistogramVec
	fallbacks *prometheus.CounterVec
	writes    *prometheus.CounterVec
	writeTime *prometheus.HistogramVec
	nodes     *prometheus.CounterVec
	node      func(string) string
}

// TracerOptions tune a Tracer; the zero value works.
type TracerOptions struct {
	// NodeLabel turns a node's address into its "node" label; nil keeps it.
	NodeLabel func(addr string) string
	// Buckets are the latency histograms' bounds in seconds; nil means
	// 0.5 ms to 10 s.
	Buckets []float64
}

// DefaultBuckets are the latency buckets of a Tracer, in seconds.
var DefaultBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// NewTracer returns a Tracer with no counts.
func NewTracer(o TracerOptions) *Tracer {
	b := o.Buckets
	if b == nil {
		b = DefaultBuckets
	}
	node := o.NodeLabel
	if node == nil {
		node = func(a string) string { return a }
	}
	return &Tracer{node: node,
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgshard_read_attempts_total",
			Help: "Read attempts, by the role of the node tried and result (ok or error); a read retried elsewhere counts twice."},
			[]string{"shard", "role", "result"}),
		readTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgshard_read_attempt_duration_seconds",
			Help: "How long a read attempt took, by the role of the node tried.", Buckets: b}, []string{"shard", "role"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgshard_read_fallbacks_total",
			Help: "Reads that could have gone to a replica and went to the primary, by reason: none-eligible (no replica's lag proven within the bounds), behind (eligible replicas had not replayed the session's writes in time), retry (the replica tried first failed)."},
			[]string{"shard", "reason"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgshard_writes_total",
			Help: "Writes by outcome: committed, failed (nothing committed) or unknown (the COMMIT may have run; its answer was lost)."},
			[]string{"shard", "outcome"}),
		writeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgshard_write_duration_seconds",
			Help: "How long a write took until its outcome was known, by outcome.", Buckets: b}, []string{"shard", "outcome"}),
		nodes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgshard_node_events_total",
			Help: "Changes in what the router believes of a node, by kind: role, unreachable, reachable, ejected, admitted, refused."},
			[]string{"shard", "node", "kind"}),
	}
}

// TraceRead counts one read attempt.
func (t *Tracer) TraceRead(_ context.Context, e replica.ReadEvent) {
	role := e.Role.String()
	result := "ok"
	if e.Err != nil {
		result = "error"
	}
	t.reads.WithLabelValues(e.Shard, role, result).Inc()
	t.readTime.WithLabelValues(e.Shard, role).Observe(e.Duration.Seconds())
	if e.Fallback != "" {
		t.fallbacks.WithLabelValues(e.Shard, e.Fallback).Inc()
	}
}

// TraceWrite counts one write's outcome.
func (t *Tracer) TraceWrite(_ context.Context, e replica.WriteEvent) {
	o := e.Outcome.String()
	t.writes.WithLabelValues(e.Shard, o).Inc()
	t.writeTime.WithLabelValues(e.Shard, o).Observe(e.Duration.Seconds())
}

// TraceNode counts one node event.
func (t *Tracer) TraceNode(e replica.NodeEvent) {
	t.nodes.WithLabelValues(e.Shard, t.node(e.Node), e.Kind.String()).Inc()
}

// Describe sends the descriptions of the Tracer's metrics.
func (t *Tracer) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range t.collectors() {
		c.Describe(ch)
	}
}

// Collect sends the Tracer's counts.
func (t *Tracer) Collect(ch chan<- prometheus.Metric) {
	for _, c := range t.collectors() {
		c.Collect(ch)
	}
}

func (t *Tracer) collectors() []prometheus.Collector {
	return []prometheus.Collector{t.reads, t.readTime, t.fallbacks, t.writes, t.writeTime, t.nodes}
}
