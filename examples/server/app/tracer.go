package app

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/pgshard/pgshard/prom"
	"github.com/pgshard/pgshard/replica"
)

// Tracer is the reference server's replica.Tracer, for router.Config.Tracer:
// it counts every event into a prom.Tracer (for /metrics) and keeps, for
// the dashboard, each shard's fallbacks by reason and each node's last
// query error. It is safe for concurrent use.
type Tracer struct {
	*prom.Tracer
	red Redactor

	mu        sync.Mutex
	fallbacks map[string]map[string]uint64 // shard -> reason -> count
	lastErr   map[string]queryError        // "shard node" -> the last failed read or write
}

type queryError struct {
	at  time.Time
	msg string
}

// NewTracer returns a Tracer whose node labels and error texts pass
// through red.
func NewTracer(red Redactor) *Tracer {
	return &Tracer{Tracer: prom.NewTracer(prom.TracerOptions{NodeLabel: red.String}), red: red,
		fallbacks: map[string]map[string]uint64{}, lastErr: map[string]queryError{}}
}

// TraceRead counts a read attempt.
func (t *Tracer) TraceRead(ctx context.Context, e replica.ReadEvent) {
	t.Tracer.TraceRead(ctx, e)
	if e.Fallback == "" && e.Err == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Fallback != "" {
		m := t.fallbacks[e.Shard]
		if m == nil {
			m = map[string]uint64{}
			t.fallbacks[e.Shard] = m
		}
		m[e.Fallback]++
	}
	if e.Err != nil && e.Node != "" {
		t.lastErr[e.Shard+" "+t.red.String(e.Node)] = queryError{time.Now(), t.red.String(e.Err.Error())}
	}
}

// TraceWrite counts a write's outcome.
func (t *Tracer) TraceWrite(ctx context.Context, e replica.WriteEvent) {
	t.Tracer.TraceWrite(ctx, e)
	if e.Err != nil && e.Node != "" {
		t.mu.Lock()
		t.lastErr[e.Shard+" "+t.red.String(e.Node)] = queryError{time.Now(), t.red.String(e.Err.Error())}
		t.mu.Unlock()
	}
}

// fallbackReasons returns a copy of shard's fallbacks by reason.
func (t *Tracer) fallbackReasons(shard string) map[string]uint64 {
	if t == nil {
		return map[string]uint64{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := maps.Clone(t.fallbacks[shard])
	if out == nil {
		out = map[string]uint64{}
	}
	return out
}

// lastError returns a node's last query error, if any.
func (t *Tracer) lastError(key string) (queryError, bool) {
	if t == nil {
		return queryError{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.lastErr[key]
	return e, ok
}
