package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
)

// The true lag of a replica read, measured from outside the library.
//
// A sampler asks every node for its WAL position each period on a
// connection of its own: a primary for pg_current_wal_lsn(), a replica for
// pg_last_wal_replay_lsn(). Each sample keeps the instant its query was
// sent (begin) and the instant its answer arrived (end).
//
// A replica that has replayed position L holds every transaction whose
// commit record is at or before L. With synchronous_commit on, a
// transaction is visible on the primary only once its commit record is
// written, so at the moment a primary sample read a position p <= L, the
// replica held everything visible on the primary. Hence, for a read that
// starts at t on a replica whose last sample before t (by end) read L:
//
//	true lag at t  <=  t - begin of the latest primary sample with p <= L
//
// Replay is monotonic, so the replica was at L or past it at t: the bound
// holds, and overestimates by about two sampler periods when the sampler
// keeps time, more when the machine starves it. lagFloor is the matching
// lower bound: a read counts as served beyond the lag bound only when its
// lower bound is past MaxLag.

// posSample is one answer of the sampler.
type posSample struct {
	begin, end time.Time
	lsn        replica.LSN
}

// posSeries are one node's samples, split by the role it reported.
type posSeries struct {
	node *pgcluster.Node

	mu      sync.Mutex
	primary []posSample
	replica []posSample
}

// posSampler samples every node of a cluster. It is safe for concurrent use.
type posSampler struct {
	every  time.Duration
	byPort map[int]*posSeries
	shards map[string]pgcluster.Shard
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startPosSampler(c *pgcluster.Cluster, every time.Duration) *posSampler {
	ctx, cancel := context.WithCancel(context.Background())
	p := &posSampler{every: every, byPort: map[int]*posSeries{}, shards: map[string]pgcluster.Shard{}, cancel: cancel}
	for _, sh := range c.Shards() {
		p.shards[sh.Name] = sh
	}
	for _, n := range c.Nodes() {
		s := &posSeries{node: n}
		p.byPort[n.Port()] = s
		p.wg.Go(func() { p.run(ctx, s) })
	}
	return p
}

func (p *posSampler) stop() {
	p.cancel()
	p.wg.Wait()
}

const posSQL = `SELECT pg_is_in_recovery(),
	(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text`

func (p *posSampler) run(ctx context.Context, s *posSeries) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if conn == nil {
			cfg, err := pgx.ParseConfig(s.node.DSN())
			if err != nil {
				return
			}
			cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
			cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			conn, err = pgx.ConnectConfig(cctx, cfg)
			cancel()
			if err != nil {
				conn = nil
				continue
			}
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		begin := time.Now()
		var inRecovery bool
		var text *string
		err := conn.QueryRow(qctx, posSQL).Scan(&inRecovery, &text)
		end := time.Now()
		cancel()
		if err != nil || text == nil {
			conn.Close(context.Background())
			conn = nil
			continue
		}
		lsn, err := replica.ParseLSN(*text)
		if err != nil {
			continue
		}
		s.mu.Lock()
		if inRecovery {
			s.replica = append(s.replica, posSample{begin, end, lsn})
		} else {
			s.primary = append(s.primary, posSample{begin, end, lsn})
		}
		s.mu.Unlock()
	}
}

// replayAt returns the last replay position sampled on the replica at port
// by t, and when that sample ended; false if there is none within a
// second (the node was down, or the sampler starved).
func (p *posSampler) replayAt(port int, t time.Time) (posSample, bool) {
	s := p.byPort[port]
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.replica), func(i int) bool { return s.replica[i].end.After(t) }) - 1
	if i < 0 || t.Sub(s.replica[i].end) > time.Second {
		return posSample{}, false
	}
	return s.replica[i], true
}

// lagBound is the upper bound of the true lag, at t, of the replica at
// port: see the comment at the top of this file.
func (p *posSampler) lagBound(port int, t time.Time) (time.Duration, bool) {
	r, ok := p.replayAt(port, t)
	if !ok {
		return 0, false
	}
	prim := p.byPort[p.shards[p.byPort[port].node.Shard()].Primary.Port()]
	prim.mu.Lock()
	defer prim.mu.Unlock()
	ps := prim.primary
	n := sort.Search(len(ps), func(i int) bool { return ps[i].begin.After(t) })
	j := sort.Search(n, func(i int) bool { return ps[i].lsn > r.lsn }) - 1
	if j < 0 {
		return 0, false
	}
	return t.Sub(ps[j].begin), true
}

// lagFloor is a lower bound of the true lag, at t, of a read on the
// replica at port that ended at end: the read saw no more than the
// replica's position at the first sample sent after it ended, L'; it
// misses whatever the primary wrote past L', and the primary had written
// past L' when the first of its samples that read more than L' was
// answered. (WAL past L' holds a commit within milliseconds under the
// suite's write load: the bound assumes it.)
func (p *posSampler) lagFloor(port int, t, end time.Time) (time.Duration, bool) {
	s := p.byPort[port]
	s.mu.Lock()
	i := sort.Search(len(s.replica), func(i int) bool { return !s.replica[i].begin.Before(end) })
	if i == len(s.replica) || s.replica[i].begin.Sub(end) > time.Second {
		s.mu.Unlock()
		return 0, false
	}
	seen := s.replica[i].lsn
	s.mu.Unlock()
	prim := p.byPort[p.shards[s.node.Shard()].Primary.Port()]
	prim.mu.Lock()
	defer prim.mu.Unlock()
	ps := prim.primary
	k := sort.Search(len(ps), func(k int) bool { return ps[k].lsn > seen })
	if k == len(ps) {
		return 0, true
	}
	return max(t.Sub(ps[k].end), 0), true
}

// primaryLSN returns the shard's primary's position as last sampled.
func (p *posSampler) primaryLSN(shardName string) (replica.LSN, bool) {
	prim := p.byPort[p.shards[shardName].Primary.Port()]
	prim.mu.Lock()
	defer prim.mu.Unlock()
	if len(prim.primary) == 0 {
		return 0, false
	}
	return prim.primary[len(prim.primary)-1].lsn, true
}

// reached returns the end of the first sample after from in which the
// replica at port had replayed lsn.
func (p *posSampler) reached(port int, from time.Time, lsn replica.LSN) (time.Time, bool) {
	s := p.byPort[port]
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.replica {
		if r.begin.After(from) && r.lsn >= lsn {
			return r.end, true
		}
	}
	return time.Time{}, false
}

// maxLag returns the largest lag bound of the replica at port over its
// samples in [from, to).
func (p *posSampler) maxLag(port int, from, to time.Time) time.Duration {
	s := p.byPort[port]
	s.mu.Lock()
	var ends []time.Time
	for _, r := range s.replica {
		if !r.end.Before(from) && r.end.Before(to) {
			ends = append(ends, r.end)
		}
	}
	s.mu.Unlock()
	var m time.Duration
	for _, at := range ends {
		if l, ok := p.lagBound(port, at); ok {
			m = max(m, l)
		}
	}
	return m
}

// lagCheck is the verdict on the replica reads of a span of time.
type lagCheck struct {
	reads        int           // successful replica reads checked
	unknown      int           // reads with no position sample near them
	inconclusive int           // upper bound past MaxLag, lower bound within it
	beyond       int           // lower bound past MaxLag: served beyond the bound
	max          time.Duration // the largest upper bound of a read
	maxWhere     string
	maxFloor     time.Duration // the largest lower bound
	perNode      map[int]int
}

// checkReplicaReads bounds the true lag of every replica read that started
// in [from, to), of those keep says yes to (nil: all), and counts those
// past maxLag.
func (e *chaosEnv) checkReplicaReads(from, to time.Time, maxLag time.Duration, keep func(*tracedRead) bool) lagCheck {
	e.trace.mu.Lock()
	reads := append([]tracedRead(nil), e.trace.reads...)
	e.trace.mu.Unlock()
	c := lagCheck{perNode: map[int]int{}}
	for _, r := range reads {
		if r.failed || r.start.Before(from) || !r.start.Before(to) || (keep != nil && !keep(&r)) {
			continue
		}
		c.reads++
		c.perNode[r.port]++
		hi, ok1 := e.pos.lagBound(r.port, r.start)
		lo, ok2 := e.pos.lagFloor(r.port, r.start, r.end)
		if !ok1 || !ok2 {
			c.unknown++
			continue
		}
		if hi > c.max {
			c.max = hi
			c.maxWhere = fmt.Sprintf("%s at %.3fs", e.pos.byPort[r.port].node.Name(), r.start.Sub(e.began).Seconds())
		}
		c.maxFloor = max(c.maxFloor, lo)
		switch {
		case lo > maxLag:
			c.beyond++
		case hi > maxLag:
			c.inconclusive++
		}
	}
	return c
}

// noteLag explains a lag check's figures.
func (e *chaosEnv) noteLag(res *chaosResult, lc lagCheck) {
	var nodes []string
	for port, n := range lc.perNode {
		nodes = append(nodes, fmt.Sprintf("%s %d", e.pos.byPort[port].node.Name(), n))
	}
	slices.Sort(nodes)
	res.note("Replica reads traced: %d (%s); %d had no position sample within 1 s around them; %d were beyond the lag bound (lower bound past MaxLag); %d inconclusive (upper bound past MaxLag, lower bound within it). Largest upper bound %s (%s); largest lower bound %s.",
		lc.reads, joinOr(nodes, "none"), lc.unknown, lc.beyond, lc.inconclusive, fmtDur(lc.max), lc.maxWhere, fmtDur(lc.maxFloor))
}
