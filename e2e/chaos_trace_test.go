package e2e

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// readTrace records every read that a replica's pool served: a pgx tracer
// on each pool of each instance. It is safe for concurrent use.
type readTrace struct {
	replicas map[int]bool // the replicas' ports; fixed at creation

	mu    sync.Mutex
	reads []tracedRead
}

type tracedRead struct {
	port       int
	start, end time.Time
	failed     bool
}

type traceStart struct{}

// nodeTracer traces one pool's queries and batches.
type nodeTracer struct {
	rt   *readTrace
	port int
}

func (rt *readTrace) tracer(port int) *nodeTracer { return &nodeTracer{rt, port} }

// counts says whether a statement is a read a client asked for, not the
// library's probe of a replica's position.
func (nt *nodeTracer) counts(sql string) bool {
	return nt.rt.replicas[nt.port] && !strings.Contains(sql, "pg_last_wal_replay_lsn")
}

func (nt *nodeTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !nt.counts(d.SQL) {
		return ctx
	}
	return context.WithValue(ctx, traceStart{}, time.Now())
}

func (nt *nodeTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	nt.done(ctx, d.Err)
}

func (nt *nodeTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	if d.Batch == nil || len(d.Batch.QueuedQueries) == 0 || !nt.counts(d.Batch.QueuedQueries[0].SQL) {
		return ctx
	}
	return context.WithValue(ctx, traceStart{}, time.Now())
}

func (nt *nodeTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (nt *nodeTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchEndData) {
	nt.done(ctx, d.Err)
}

func (nt *nodeTracer) done(ctx context.Context, err error) {
	start, ok := ctx.Value(traceStart{}).(time.Time)
	if !ok {
		return
	}
	r := tracedRead{port: nt.port, start: start, end: time.Now(), failed: err != nil}
	nt.rt.mu.Lock()
	nt.rt.reads = append(nt.rt.reads, r)
	nt.rt.mu.Unlock()
}

// readsWhile counts the traced replica reads for which in says yes.
func (e *chaosEnv) readsWhile(in func(port int, at time.Time) bool) int {
	e.trace.mu.Lock()
	defer e.trace.mu.Unlock()
	n := 0
	for _, r := range e.trace.reads {
		if !r.failed && in(r.port, r.start) {
			n++
		}
	}
	return n
}

// failures counts the reads sent to the replica at port in [from, to)
// that failed there.
func (rt *readTrace) failures(port int, from, to time.Time) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	n := 0
	for _, r := range rt.reads {
		if r.port == port && r.failed && !r.start.Before(from) && r.start.Before(to) {
			n++
		}
	}
	return n
}
