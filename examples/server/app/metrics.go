package app

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgshard/pgshard/prom"
	"github.com/pgshard/pgshard/router"
)

// httpMetrics counts requests and their latency by route and status, for
// /metrics and for the dashboard. It is safe for concurrent use.
type httpMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited prometheus.Counter
	panics      prometheus.Counter

	// The dashboard's running totals: a scrape of the vectors would cost
	// more than these two adds.
	total, errors5xx atomic.Uint64
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgshard_http_requests_total",
			Help: "HTTP requests served, by route and status."}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgshard_http_request_duration_seconds",
			Help: "HTTP request latency, by route and status.", Buckets: prom.DefaultBuckets}, []string{"route", "status"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgshard_http_rate_limited_total",
			Help: "Requests refused with 429 by the per-IP rate limit."}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgshard_http_panics_total",
			Help: "Handler panics recovered and answered 500."}),
	}
}

func (m *httpMetrics) observe(route string, status int, d time.Duration) {
	st := strconv.Itoa(status)
	m.requests.WithLabelValues(route, st).Inc()
	m.duration.WithLabelValues(route, st).Observe(d.Seconds())
	m.total.Add(1)
	if status >= 500 {
		m.errors5xx.Add(1)
	}
}

// newRegistry gathers the server's /metrics: the Go runtime and the
// process (client_golang's collectors), the HTTP figures, the router's
// Stats, and the library's events when the router was given a prom.Tracer.
func newRegistry(r *router.Router, m *httpMetrics, tracer *prom.Tracer, red Redactor) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.rateLimited, m.panics,
		prom.NewStats(r, prom.StatsOptions{NodeLabel: red.String}),
	)
	if tracer != nil {
		reg.MustRegister(tracer)
	}
	return reg
}

// metricsHandler serves a registry in the Prometheus text format.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
