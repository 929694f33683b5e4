package app

import (
	_ "embed"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// GET /readyz: 503 while any shard has no write target, so that a load
// balancer stops sending traffic that would fail.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	type shardReady struct {
		Name      string `json:"name"`
		Range     string `json:"range"`
		PrimaryUp bool   `json:"primary_up"`
	}
	out := struct {
		Ready  bool         `json:"ready"`
		Shards []shardReady `json:"shards"`
	}{Ready: s.schemaReady.Load()}
	for _, sh := range s.r.Stats().Shards {
		up := sh.Replica.Primary != "" && !sh.Replica.SplitBrain
		out.Ready = out.Ready && up
		out.Shards = append(out.Shards, shardReady{sh.Name, sh.Range, up})
	}
	status := http.StatusOK
	if !out.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
}

//go:embed dashboard.html
var dashboardHTML []byte

// GET /debug/shards: one self-contained page that polls shards.json.
func serveDashboard(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	w.Write(dashboardHTML)
}

// The shards.json document: what the dashboard draws.
type (
	shardsDoc struct {
		Instance      string      `json:"instance"`
		Time          time.Time   `json:"time"`
		UptimeSeconds float64     `json:"uptime_seconds"`
		MaxLagSeconds float64     `json:"max_lag_seconds"`
		Ready         bool        `json:"ready"`
		Shards        []shardDoc  `json:"shards"`
		Caches        []cacheDoc  `json:"caches"`
		HTTP          httpSummary `json:"http"`
		Map           mapDoc      `json:"map"`
		// Reshard lists the resharding workflows of the store the router
		// follows (none for a static map).
		Reshard []reshardDoc `json:"reshard"`
		// History is the server's samples taken after ?since= (Unix ms;
		// 0 or none: the whole last 10 minutes), oldest first.
		History             []sample `json:"history"`
		HistoryEverySeconds float64  `json:"history_every_seconds"`
	}
	mapDoc struct {
		Version      int64     `json:"version"`
		Changed      time.Time `json:"changed"`
		Applied      time.Time `json:"applied"`
		Following    bool      `json:"following"`
		ControlError string    `json:"control_error,omitempty"`
	}
	shardDoc struct {
		Name          string    `json:"name"`
		Range         string    `json:"range"`
		Primary       string    `json:"primary"`
		SplitBrain    bool      `json:"split_brain"`
		Listening     bool      `json:"listening"`
		Invalidations uint64    `json:"invalidations"`
		Reconnects    uint64    `json:"reconnects"`
		RejectedReads uint64    `json:"rejected_reads"`
		Nodes         []nodeDoc `json:"nodes"`
		// Rows is the estimated number of rows (users and posts) on the
		// shard, from its primary's statistics every 10 s; -1 unknown.
		Rows int64 `json:"rows"`
		// TrafficShare is the shard's share of the reads and writes served
		// by all shards' nodes since this instance started, 0 to 1.
		TrafficShare float64 `json:"traffic_share"`
		// Fallbacks are the reads that asked for a replica and went to the
		// primary, by reason (none-eligible, behind, retry).
		Fallbacks map[string]uint64 `json:"fallbacks"`
	}
	nodeDoc struct {
		Addr        string  `json:"addr"`
		Role        string  `json:"role"`
		Eligible    bool    `json:"eligible"`
		Reason      string  `json:"reason"`
		LagSeconds  float64 `json:"lag_seconds"`
		LagBytes    int64   `json:"lag_bytes"`
		LagKnown    bool    `json:"lag_known"`
		Outstanding int64   `json:"outstanding"`
		Reads       uint64  `json:"reads"`
		Writes      uint64  `json:"writes"`
		Fallbacks   uint64  `json:"fallbacks"`
		Failures    uint64  `json:"failures"`
		Error       string  `json:"error,omitempty"` // the last check's
		CheckAgeMS  int64   `json:"check_age_ms"`
		// LastError is the last failed read or write on the node, and how
		// long ago; "" when none since the start.
		LastError      string  `json:"last_error,omitempty"`
		LastErrorAgeMS int64   `json:"last_error_age_ms,omitempty"`
		Pool           poolDoc `json:"pool"`
	}
	poolDoc struct {
		Total    int32 `json:"total"`
		Idle     int32 `json:"idle"`
		Acquired int32 `json:"acquired"`
		Max      int32 `json:"max"`
	}
	cacheDoc struct {
		Name          string  `json:"name"`
		Hits          uint64  `json:"hits"`
		Misses        uint64  `json:"misses"`
		HitRatio      float64 `json:"hit_ratio"`
		Entries       int     `json:"entries"`
		Capacity      int     `json:"capacity"`
		Evictions     uint64  `json:"evictions"`
		Expirations   uint64  `json:"expirations"`
		Invalidations uint64  `json:"invalidations"`
	}
	httpSummary struct {
		Requests    uint64 `json:"requests"`
		Errors5xx   uint64 `json:"errors_5xx"`
		RateLimited uint64 `json:"rate_limited"`
	}
)

// GET /debug/shards.json.
func (s *Server) shardsJSON(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, errorBody{"since: want Unix milliseconds, got " + strconv.Quote(v)})
			return
		}
		since = n
	}
	d := s.shardsDoc(s.r.Stats())
	d.History, d.HistoryEverySeconds = s.hist.since(since), historyEvery.Seconds()
	d.Reshard = s.reshardDocs(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) shardsDoc(st router.Stats) shardsDoc {
	now := time.Now()
	maxLag := s.opts.MaxLag
	if maxLag == 0 {
		maxLag = time.Second
	}
	d := shardsDoc{Instance: s.opts.Instance, Time: now.UTC(), UptimeSeconds: now.Sub(s.started).Seconds(),
		MaxLagSeconds: maxLag.Seconds(), Ready: s.schemaReady.Load(), Shards: []shardDoc{}, Caches: []cacheDoc{}}
	rows, share := s.hist.rowCounts(), shardTraffic(st)
	for _, sh := range st.Shards {
		sd := shardDoc{Name: sh.Name, Range: sh.Range, Primary: s.red.String(sh.Replica.Primary), SplitBrain: sh.Replica.SplitBrain,
			Listening: sh.Listening, Invalidations: sh.Invalidations, Reconnects: sh.Reconnects,
			RejectedReads: sh.Replica.RejectedReads, Nodes: []nodeDoc{}, Rows: -1, TrafficShare: share[sh.Name],
			Fallbacks: s.tracer.fallbackReasons(sh.Name)}
		if n, ok := rows[sh.Name]; ok {
			sd.Rows = n
		}
		d.Ready = d.Ready && sh.Replica.Primary != "" && !sh.Replica.SplitBrain
		for _, n := range sh.Replica.Nodes {
			nd := s.nodeDoc(n, now)
			if e, ok := s.tracer.lastError(sh.Name + " " + nd.Addr); ok {
				nd.LastError, nd.LastErrorAgeMS = e.msg, now.Sub(e.at).Milliseconds()
			}
			sd.Nodes = append(sd.Nodes, nd)
		}
		d.Shards = append(d.Shards, sd)
	}
	for _, c := range st.Caches {
		capacity := 0
		if c.Name == "users" {
			capacity = s.opts.Cache.Capacity
		}
		d.Caches = append(d.Caches, cacheDoc{Name: c.Name, Hits: c.Hits, Misses: c.Misses, HitRatio: c.HitRatio(),
			Entries: c.Entries, Capacity: capacity, Evictions: c.Evictions, Expirations: c.Expirations, Invalidations: c.Invalidations})
	}
	d.Map = mapDoc{Version: st.Map.Version, Changed: st.Map.Changed, Applied: st.Map.Applied, Following: st.Map.Following,
		ControlError: s.red.String(st.Map.ControlError)}
	d.HTTP.Requests, d.HTTP.Errors5xx = s.metrics.total.Load(), s.metrics.errors5xx.Load()
	d.HTTP.RateLimited = uint64(counterValue(s.metrics.rateLimited))
	return d
}

func (s *Server) nodeDoc(n replica.NodeStats, now time.Time) nodeDoc {
	age := int64(-1)
	if !n.LastCheck.IsZero() {
		age = now.Sub(n.LastCheck).Milliseconds()
	}
	return nodeDoc{Addr: s.red.String(n.Addr), Role: n.Role.String(), Eligible: n.Eligible, Reason: n.Reason,
		LagSeconds: n.Lag.Seconds(), LagBytes: n.LagBytes, LagKnown: n.LagKnown, Outstanding: n.Outstanding,
		Reads: n.Reads, Writes: n.Writes, Fallbacks: n.Fallbacks, Failures: n.Failures, Error: s.red.String(n.Error),
		CheckAgeMS: age, Pool: poolDoc{n.Pool.Total, n.Pool.Idle, n.Pool.Acquired, n.Pool.Max}}
}

// counterValue reads a counter's value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if c.Write(&m) != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
