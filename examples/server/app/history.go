package app

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgshard/pgshard/router"
)

// The dashboard's history: the server samples its figures every
// historyEvery and keeps the last historySpan, so that a page opened in
// the middle of an incident shows what led to it at once.
const (
	historyEvery = 2 * time.Second
	historySpan  = 10 * time.Minute
	// rowsEvery is how often each shard's row count is estimated.
	rowsEvery = 10 * time.Second
)

// latencyBounds are the edges, in seconds, of the buckets the history's
// percentiles are read from (a percentile is its bucket's upper edge).
var latencyBounds = [...]float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, math.Inf(1)}

// latencyWindow counts request latencies since the last sample. It is safe
// for concurrent use.
type latencyWindow struct {
	buckets [len(latencyBounds)]atomic.Uint64
}

func (w *latencyWindow) observe(d time.Duration) {
	sec := d.Seconds()
	for i, b := range latencyBounds {
		if sec <= b {
			w.buckets[i].Add(1)
			return
		}
	}
}

// take returns the p50 and p99 since the last take, in seconds, and resets.
func (w *latencyWindow) take() (p50, p99 float64) {
	var counts [len(latencyBounds)]uint64
	var n uint64
	for i := range w.buckets {
		counts[i] = w.buckets[i].Swap(0)
		n += counts[i]
	}
	if n == 0 {
		return 0, 0
	}
	pct := func(p float64) float64 {
		rank := uint64(math.Ceil(p * float64(n)))
		var cum uint64
		for i, c := range counts {
			if cum += c; cum >= rank {
				if math.IsInf(latencyBounds[i], 1) {
					return latencyBounds[i-1] * 2
				}
				return latencyBounds[i]
			}
		}
		return 0
	}
	return pct(0.50), pct(0.99)
}

// sample is one point of the history.
type sample struct {
	At        int64   `json:"t"` // Unix milliseconds
	RPS       float64 `json:"rps"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	Errors5xx uint64  `json:"errors_5xx"` // in the interval
	HitRatio  float64 `json:"hit_ratio"`  // users cache, in the interval; -1 with no lookups
	// Nodes are keyed "shard node".
	Nodes map[string]nodeSample `json:"nodes"`
}

// nodeSample is a node's figures in one interval.
type nodeSample struct {
	Lag       float64 `json:"lag"` // seconds, as of the sample
	LagKnown  bool    `json:"lag_known"`
	Eligible  bool    `json:"eligible"`
	Reads     float64 `json:"reads"` // a second, over the interval
	Writes    float64 `json:"writes"`
	Fallbacks float64 `json:"fallbacks"`
	Failures  float64 `json:"failures"`
}

// history keeps the samples, oldest first. It is safe for concurrent use.
type history struct {
	mu      sync.Mutex
	samples []sample

	rowsMu sync.Mutex
	rows   map[string]int64 // shard -> estimated rows (users + posts); -1 unknown
}

// since returns the samples taken after t (Unix milliseconds).
func (h *history) since(t int64) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for i < len(h.samples) && h.samples[i].At <= t {
		i++
	}
	return append(make([]sample, 0, len(h.samples)-i), h.samples[i:]...)
}

func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, s)
	if n := int(historySpan / historyEvery); len(h.samples) > n {
		h.samples = append(h.samples[:0], h.samples[len(h.samples)-n:]...)
	}
}

func (h *history) rowCounts() map[string]int64 {
	h.rowsMu.Lock()
	defer h.rowsMu.Unlock()
	out := make(map[string]int64, len(h.rows))
	for k, v := range h.rows {
		out[k] = v
	}
	return out
}

// sampleLoop samples the server's figures every historyEvery, and the
// shards' row counts every rowsEvery, until ctx ends.
func (s *Server) sampleLoop(ctx context.Context) {
	type counts struct{ reads, writes, fallbacks, failures uint64 }
	var (
		last      = time.Now()
		lastReqs  = s.metrics.total.Load()
		last5xx   = s.metrics.errors5xx.Load()
		lastNodes = map[string]counts{}
		lastHits  uint64
		lastMiss  uint64
		lastRows  time.Time
	)
	tick := time.NewTicker(historyEvery)
	defer tick.Stop()
	for {
		if time.Since(lastRows) >= rowsEvery {
			s.countRows(ctx)
			lastRows = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		secs := now.Sub(last).Seconds()
		last = now
		st := s.r.Stats()
		reqs, e5 := s.metrics.total.Load(), s.metrics.errors5xx.Load()
		p50, p99 := s.latency.take()
		sm := sample{At: now.UnixMilli(), RPS: float64(reqs-lastReqs) / secs, P50MS: p50 * 1000, P99MS: p99 * 1000,
			Errors5xx: e5 - last5xx, HitRatio: -1, Nodes: map[string]nodeSample{}}
		lastReqs, last5xx = reqs, e5
		for _, c := range st.Caches {
			if c.Name != "users" {
				continue
			}
			if dh, dm := c.Hits-lastHits, c.Misses-lastMiss; dh+dm > 0 {
				sm.HitRatio = float64(dh) / float64(dh+dm)
			}
			lastHits, lastMiss = c.Hits, c.Misses
		}
		for _, sh := range st.Shards {
			for _, n := range sh.Replica.Nodes {
				key := sh.Name + " " + s.red.String(n.Addr)
				was := lastNodes[key]
				now := counts{n.Reads, n.Writes, n.Fallbacks, n.Failures}
				rate := func(a, b uint64) float64 {
					if a < b {
						return 0 // the node was replaced: its counters restarted
					}
					return float64(a-b) / secs
				}
				sm.Nodes[key] = nodeSample{Lag: n.Lag.Seconds(), LagKnown: n.LagKnown, Eligible: n.Eligible,
					Reads: rate(now.reads, was.reads), Writes: rate(now.writes, was.writes),
					Fallbacks: rate(now.fallbacks, was.fallbacks), Failures: rate(now.failures, was.failures)}
				lastNodes[key] = now
			}
		}
		s.hist.add(sm)
	}
}

// countRows estimates each shard's rows (users and posts) from the
// primary's statistics: cheap, and good to a few percent.
func (s *Server) countRows(ctx context.Context) {
	rows := map[string]int64{}
	for _, t := range s.r.Shards() {
		n := int64(-1)
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		// The primary's: a replica keeps no live-row counts.
		err := t.QueryRow(router.WithPrimary(qctx), `SELECT coalesce(sum(n_live_tup), 0)::bigint FROM pg_stat_user_tables
			WHERE relname IN ('users', 'posts')`).Scan(&n)
		cancel()
		if err != nil {
			n = -1
		}
		rows[t.Shard()] = n
	}
	s.hist.rowsMu.Lock()
	s.hist.rows = rows
	s.hist.rowsMu.Unlock()
}

// shardTraffic is each shard's share of the reads and writes its nodes
// served since the start.
func shardTraffic(st router.Stats) map[string]float64 {
	per := map[string]float64{}
	var total float64
	for _, sh := range st.Shards {
		for _, n := range sh.Replica.Nodes {
			per[sh.Name] += float64(n.Reads + n.Writes)
		}
		total += per[sh.Name]
	}
	for k := range per {
		if total > 0 {
			per[k] /= total
		} else {
			per[k] = 0
		}
	}
	return per
}
