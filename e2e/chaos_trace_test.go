package e2e

import (
	"context"
	"sync"
	"time"

	"github.com/pgshard/pgshard/replica"
)

// readTrace records what the library reports through its Tracer
// (router.Config.Tracer), for every instance of a scenario: each attempt of
// a read, each write's outcome and each change in a node's health. The
// suite learns from it which node served a read, with no matching of SQL
// text. It is safe for concurrent use.
type readTrace struct {
	mu     sync.Mutex
	all    int // read attempts of any node, for the report's sanity check
	reads  []tracedRead
	writes []tracedWrite
	nodes  []tracedNode
}

// tracedRead is one attempt of a read that went to a replica.
type tracedRead struct {
	inst       string // the instance whose router made it
	shard      string
	port       int
	attempt    int
	start, end time.Time
	failed     bool
}

// tracedWrite is one write's outcome.
type tracedWrite struct {
	inst    string
	shard   string
	at      time.Time
	outcome replica.WriteOutcome
	err     string
}

// tracedNode is a change in what an instance's router believes of a node.
type tracedNode struct {
	inst string
	at   time.Time
	ev   replica.NodeEvent
}

// tracer returns the Tracer of the instance named inst.
func (rt *readTrace) tracer(inst string) replica.Tracer {
	return replica.TracerFuncs{
		Read: func(_ context.Context, ev replica.ReadEvent) {
			rt.mu.Lock()
			rt.all++
			rt.mu.Unlock()
			if ev.Role != replica.RoleReplica || ev.Node == "" {
				return
			}
			end := time.Now()
			r := tracedRead{inst: inst, shard: ev.Shard, port: portOf(ev.Node), attempt: ev.Attempt,
				start: end.Add(-ev.Duration), end: end, failed: ev.Err != nil}
			rt.mu.Lock()
			rt.reads = append(rt.reads, r)
			rt.mu.Unlock()
		},
		Write: func(_ context.Context, ev replica.WriteEvent) {
			w := tracedWrite{inst: inst, shard: ev.Shard, at: time.Now(), outcome: ev.Outcome}
			if ev.Err != nil {
				w.err = ev.Err.Error()
			}
			rt.mu.Lock()
			rt.writes = append(rt.writes, w)
			rt.mu.Unlock()
		},
		Node: func(ev replica.NodeEvent) {
			rt.mu.Lock()
			rt.nodes = append(rt.nodes, tracedNode{inst, time.Now(), ev})
			rt.mu.Unlock()
		},
	}
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

// readsOf returns the traced replica reads for which keep says yes.
func (rt *readTrace) readsOf(keep func(*tracedRead) bool) []tracedRead {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []tracedRead
	for i := range rt.reads {
		if keep(&rt.reads[i]) {
			out = append(out, rt.reads[i])
		}
	}
	return out
}

// writesOf returns the traced writes for which keep says yes.
func (rt *readTrace) writesOf(keep func(*tracedWrite) bool) []tracedWrite {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []tracedWrite
	for i := range rt.writes {
		if keep(&rt.writes[i]) {
			out = append(out, rt.writes[i])
		}
	}
	return out
}

// nodeEvents returns the traced node events for which keep says yes.
func (rt *readTrace) nodeEvents(keep func(*tracedNode) bool) []tracedNode {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []tracedNode
	for i := range rt.nodes {
		if keep(&rt.nodes[i]) {
			out = append(out, rt.nodes[i])
		}
	}
	return out
}

// attempts is how many read attempts the tracer saw on any node.
func (rt *readTrace) attempts() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.all
}
