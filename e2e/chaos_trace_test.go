package e2e

import (
	"context"
	"sync"
	"time"

	"github.com/pgshard/pgshard/replica"
)

// readTrace records every read attempt that a replica served, as the
// library's Tracer reports it (router.Config.Tracer on each instance): the
// library's own probes are not reads, so nothing needs to be filtered out.
// It is safe for concurrent use.
type readTrace struct {
	replicas map[int]bool // the replicas' ports; fixed at creation

	mu    sync.Mutex
	reads []tracedRead
	all   int // read attempts of any node, for the report's sanity check
}

type tracedRead struct {
	port       int
	start, end time.Time
	failed     bool
}

// tracer is the Tracer each instance's router is given.
func (rt *readTrace) tracer() replica.Tracer {
	return replica.TracerFuncs{Read: rt.read}
}

func (rt *readTrace) read(_ context.Context, ev replica.ReadEvent) {
	end := time.Now()
	port := portOf(ev.Node)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.all++
	if ev.Node == "" || !rt.replicas[port] {
		return
	}
	rt.reads = append(rt.reads, tracedRead{port: port, start: end.Add(-ev.Duration), end: end, failed: ev.Err != nil})
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

// attempts is how many read attempts the tracer saw on any node.
func (rt *readTrace) attempts() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.all
}
