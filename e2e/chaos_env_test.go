package e2e

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgshard/pgshard/examples/server/app"
	"github.com/pgshard/pgshard/internal/loadgen"
	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
)

// chaosLengths are a suite's durations and load.
type chaosLengths struct {
	full         bool
	warm         time.Duration // load before a fault
	storm        time.Duration // 1: how long replay is paused and resumed
	down         time.Duration // 2, 3: how long a node stays down
	after        time.Duration // load after the repair
	promoteGap   time.Duration // 4: the primary is down this long before the promotion
	listenerRun  time.Duration // 5: the load, during which the listeners are cut
	terminations int           // 5: how many times
	exhaust      time.Duration // 6: the overload
	delayed      time.Duration // 7: how long the replica is delayed
	frozen       time.Duration // 9: how long the primary is frozen
	frozenReqTO  time.Duration // 9: the instance's request timeout
	blipPause    time.Duration // 10: replay paused this long before the primary's blip
	cutoff       time.Duration // 11: how long instance b is cut off from the primary
	kills        int           // 12: rounds of terminations
	killEvery    time.Duration // 12: between terminations
	slots        time.Duration // 12: how long the connection slots stay taken
	clients      int           // loadgen's virtual clients
	users        int           // loadgen's user population
	sampleEvery  time.Duration // the WAL position sampler's period
}

var (
	chaosShort = chaosLengths{warm: time.Second, storm: 4 * time.Second, down: 1500 * time.Millisecond,
		after: time.Second, promoteGap: 500 * time.Millisecond, listenerRun: 2400 * time.Millisecond, terminations: 2,
		exhaust: 2 * time.Second, delayed: 2 * time.Second, frozen: 3 * time.Second, frozenReqTO: 1500 * time.Millisecond,
		blipPause: 1500 * time.Millisecond, cutoff: 2 * time.Second, kills: 3, killEvery: 300 * time.Millisecond,
		slots: time.Second, clients: 12, users: 200, sampleEvery: 20 * time.Millisecond}
	chaosFull = chaosLengths{full: true, warm: 10 * time.Second, storm: 60 * time.Second, down: 5 * time.Second,
		after: 10 * time.Second, promoteGap: 2 * time.Second, listenerRun: 30 * time.Second, terminations: 10,
		exhaust: 30 * time.Second, delayed: 10 * time.Second, frozen: 10 * time.Second, frozenReqTO: 5 * time.Second,
		blipPause: 9 * time.Second, cutoff: 15 * time.Second, kills: 15, killEvery: time.Second,
		slots: 10 * time.Second, clients: 16, users: 2000, sampleEvery: 10 * time.Millisecond}
)

// The replica defaults the scenarios run with (replica.Options' zero values).
const (
	chaosMaxLag         = time.Second
	chaosMaxLagBytes    = 16 << 20
	chaosConnectTimeout = 2 * time.Second
	// chaosRequestTimeout bounds each request's database work (the
	// server's default).
	chaosRequestTimeout = 5 * time.Second
)

// generous is the bound past which a timing fails the test: see
// expectWithin.
func generous(want time.Duration) time.Duration { return max(3*want, want+time.Second) }

// chaosEnv is one scenario's world: its cluster, the server instances,
// and every record of what happened (client answers, router stats, WAL
// positions, replica reads, injected faults).
type chaosEnv struct {
	t      *testing.T
	name   string // the scenario's
	c      *pgcluster.Cluster
	len    chaosLengths
	began  time.Time
	shards *shard.Map
	tl     *chaosTimeline
	trace  *readTrace
	pos    *posSampler

	// requestTimeout is the instances' request timeout; 0 means
	// chaosRequestTimeout.
	requestTimeout time.Duration
	// readPercent is loadgen's share of reads; 0 means 80.
	readPercent int

	mu        sync.Mutex
	events    []chaosEvent
	instances []*chaosInstance
}

// chaosEvent is a fault injected or repaired, at the instant the call
// that did it returned.
type chaosEvent struct {
	at   time.Time
	what string
}

func newChaosEnv(t *testing.T, name string, c *pgcluster.Cluster, l chaosLengths) *chaosEnv {
	topo := app.DevTopology(c)
	assign := map[string]shard.Range{}
	for _, s := range topo.Shards {
		r, err := shard.ParseRange(s.Range)
		require.NoError(t, err)
		assign[s.Name] = r
	}
	m, err := shard.NewMap(assign)
	require.NoError(t, err)
	e := &chaosEnv{t: t, name: name, c: c, len: l, began: time.Now(), shards: m, tl: newChaosTimeline(m),
		trace: &readTrace{}}
	e.pos = startPosSampler(c, l.sampleEvery)
	t.Cleanup(e.pos.stop)
	return e
}

// mark records a fault or repair that has just happened.
func (e *chaosEnv) mark(format string, args ...any) time.Time {
	now := time.Now()
	what := fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.events = append(e.events, chaosEvent{now, what})
	e.mu.Unlock()
	e.t.Logf("%7.3fs  %s", now.Sub(e.began).Seconds(), what)
	return now
}

// eventsText lists the faults and repairs, timed from the scenario's start.
func (e *chaosEnv) eventsText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	parts := make([]string, len(e.events))
	for i, ev := range e.events {
		parts[i] = fmt.Sprintf("%.3f s %s", ev.at.Sub(e.began).Seconds(), ev.what)
	}
	return strings.Join(parts, "; ")
}

// await polls cond until it holds or limit passes, and says which: a
// repair can take longer than planned on a busy machine, and the load must
// go on until it shows.
func (e *chaosEnv) await(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// node returns a node of the cluster by name, such as "shard0-replica1".
func (e *chaosEnv) node(name string) *pgcluster.Node {
	n, err := e.c.Node(name)
	require.NoError(e.t, err)
	return n
}

// chaosInstance is one reference server on the env's cluster.
type chaosInstance struct {
	name  string
	r     *router.Router
	srv   *app.Server
	url   string
	stats *statsLog
	logs  *syncBuffer
}

// server starts an instance of the reference server in this process, with
// the replica defaults the issue names (checks every 250 ms, MaxLag 1 s,
// EjectAfter 1, AdmitAfter 2). tune may change its topology, and pool its
// pools' configuration. Its router's Tracer records into e.trace.
func (e *chaosEnv) server(name string, nodeID int64, tune func(*app.Topology), pool func(*pgxpool.Config)) *chaosInstance {
	t := e.t
	t.Helper()
	topo := app.DevTopology(e.c)
	if tune != nil {
		tune(topo)
	}
	logs := &syncBuffer{}
	red := app.NewRedactor(topo)
	log := slog.New(red.Handler(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	cfg := topo.RouterConfig(log)
	cfg.Tracer = e.trace.tracer(name)
	maxConns := cfg.Replica.ConfigurePool
	cfg.Replica.ConfigurePool = func(info replica.PoolInfo, pc *pgxpool.Config) {
		if maxConns != nil {
			maxConns(info, pc)
		}
		if pool != nil {
			pool(pc)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := router.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	srv, err := app.New(ctx, r, app.Options{NodeID: nodeID, Logger: log, Redactor: red, Cache: topo.Cache,
		MaxLag: topo.MaxLag(), Instance: name, RequestTimeout: cmp.Or(e.requestTimeout, chaosRequestTimeout)})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	// The schema has just been applied: a replica that has not replayed it
	// yet would answer "relation does not exist" (see the report).
	for _, sh := range e.c.Shards() {
		for _, r := range sh.Replicas {
			require.NoError(t, r.WaitCaughtUp(ctx, sh.Primary))
		}
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	waitListening(t, r)
	in := &chaosInstance{name: name, r: r, srv: srv, url: hs.URL, logs: logs, stats: sampleStats(r, 5*time.Millisecond)}
	t.Cleanup(in.stats.stop)
	e.mu.Lock()
	e.instances = append(e.instances, in)
	e.mu.Unlock()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("instance %s's log (end):\n%s", name, lastLines(logs.String(), 60))
		}
	})
	return in
}

// loadRun is a loadgen run in the background.
type loadRun struct {
	stop context.CancelFunc
	done chan struct{}
	rep  *loadgen.Report
	err  error
}

// load drives the instances with loadgen, recording every answer in the
// timeline, until end is called: a fault or a repair can take longer than
// planned on a busy machine, and the load must outlast it. clients 0 means
// the suite's number.
func (e *chaosEnv) load(clients int, targets ...*chaosInstance) *loadRun {
	if clients == 0 {
		clients = e.len.clients
	}
	urls := make([]string, len(targets))
	for i, in := range targets {
		urls[i] = in.url
	}
	ctx, cancel := context.WithCancel(context.Background())
	lr := &loadRun{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		lr.rep, lr.err = loadgen.Run(ctx, loadgen.Options{
			Targets: urls, Duration: time.Hour, Concurrency: clients, Users: e.len.users, ReadPercent: cmp.Or(e.readPercent, 80),
			Seed: uint64(time.Now().UnixNano()), Observe: e.tl.observer("load"),
		})
	}()
	e.t.Cleanup(func() { cancel(); <-lr.done })
	return lr
}

// end stops the load and returns its report, once loadgen has re-read
// every acknowledged write.
func (lr *loadRun) end(t *testing.T) *loadgen.Report {
	t.Helper()
	lr.stop()
	<-lr.done
	if lr.err != nil {
		t.Fatal(lr.err)
	}
	return lr.rep
}

func lastLines(s string, lines int) string {
	n := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			n++
			if n > lines {
				return s[i+1:]
			}
		}
	}
	return s
}
