package e2e

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// statsLog samples a router's Stats at a fixed period, so that the suite
// can tell when the router saw a change: a node ejected or admitted, a
// primary gone, a listener down. It is safe for concurrent use.
type statsLog struct {
	stop func()

	mu      sync.Mutex
	samples []statsSample
}

// statsSample is the part of one Stats the suite reads.
type statsSample struct {
	at     time.Time
	shards []shardSample
	nodes  []nodeSample
}

type shardSample struct {
	name       string
	primary    string // the write target's address; "" when none
	listening  bool
	reconnects uint64
}

type nodeSample struct {
	port     int
	shard    string
	role     replica.Role
	eligible bool
	reason   string
	lag      time.Duration
	lagBytes int64
	acquired int32
	maxConns int32
	err      string // the last check's error
}

func sampleStats(r *router.Router, every time.Duration) *statsLog {
	l := &statsLog{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			l.add(time.Now(), r.Stats())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	var once sync.Once
	l.stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	return l
}

func (l *statsLog) add(at time.Time, st router.Stats) {
	s := statsSample{at: at}
	for _, sh := range st.Shards {
		s.shards = append(s.shards, shardSample{name: sh.Name, primary: sh.Replica.Primary,
			listening: sh.Listening, reconnects: sh.Reconnects})
		for _, n := range sh.Replica.Nodes {
			s.nodes = append(s.nodes, nodeSample{port: portOf(n.Addr), shard: sh.Name, role: n.Role,
				eligible: n.Eligible, reason: n.Reason, lag: n.Lag, lagBytes: n.LagBytes, acquired: n.Pool.Acquired,
				maxConns: n.Pool.Max, err: n.Error})
		}
	}
	l.mu.Lock()
	l.samples = append(l.samples, s)
	l.mu.Unlock()
}

// portOf reads the port of a node address, host:port/database.
func portOf(addr string) int {
	hostPort, _, _ := strings.Cut(addr, "/")
	_, p, _ := net.SplitHostPort(hostPort)
	n, _ := strconv.Atoi(p)
	return n
}

// first returns the time of the first sample taken after from that
// satisfies ok.
func (l *statsLog) first(from time.Time, ok func(*statsSample) bool) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.samples {
		s := &l.samples[i]
		if s.at.After(from) && ok(s) {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// each calls f with every sample taken in [from, to).
func (l *statsLog) each(from, to time.Time, f func(*statsSample)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.samples {
		if s := &l.samples[i]; !s.at.Before(from) && s.at.Before(to) {
			f(s)
		}
	}
}

func (s *statsSample) node(port int) nodeSample {
	for _, n := range s.nodes {
		if n.port == port {
			return n
		}
	}
	return nodeSample{port: port, reason: "absent"}
}

func (s *statsSample) shard(name string) shardSample {
	for _, sh := range s.shards {
		if sh.name == name {
			return sh
		}
	}
	return shardSample{name: name}
}

// nodeEligible and nodeIneligible are predicates on a node's state in a sample.
func nodeEligible(port int) func(*statsSample) bool {
	return func(s *statsSample) bool { return s.node(port).eligible }
}

func nodeIneligible(port int) func(*statsSample) bool {
	return func(s *statsSample) bool { return !s.node(port).eligible }
}

// checkTimeouts counts the samples in which some node's last check had
// timed out: the machine was too busy for the checker (CheckTimeout is
// 250 ms), and the router then treats a healthy node as down.
func (l *statsLog) checkTimeouts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i := range l.samples {
		for _, ns := range l.samples[i].nodes {
			if strings.Contains(ns.err, "timeout") || strings.Contains(ns.err, "deadline exceeded") {
				n++
				break
			}
		}
	}
	return n
}
