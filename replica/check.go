package replica

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// checkSQL asks a node, in one round trip, what it is and where its WAL is.
// On a replica the position is the replay LSN; on a primary the write
// position (what a replica can at best have received). The WAL receiver
// status is hidden from unprivileged roles, so a receiver row with a NULL
// status counts as streaming.
const checkSQL = `SELECT pg_is_in_recovery(),
	(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
	EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE coalesce(status, 'streaming') = 'streaming')`

// run checks every node each CheckInterval until ctx ends.
func (s *Set) run(ctx context.Context) {
	defer close(s.done)
	defer func() {
		for _, n := range s.nodes {
			if n.dialing != nil {
				if d := <-n.dialing; d.conn != nil {
					n.conn = d.conn
				}
			}
			if n.conn != nil {
				closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
				n.conn.Close(closeCtx)
				cancel()
			}
		}
	}()
	t := time.NewTicker(s.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.checkAll(ctx, false)
		}
	}
}

// probe is one node's answer to checkSQL.
type probe struct {
	ok        bool
	slow      bool // failed by timing out, not by the node refusing or dropping us
	err       string
	inRecov   bool
	lsn       LSN
	streaming bool
	at        time.Time
}

// checkAll checks every node at once, then derives roles and lag from the
// answers taken together, so that byte lag compares positions of one tick.
func (s *Set) checkAll(ctx context.Context, first bool) {
	probes := make([]probe, len(s.nodes))
	var wg sync.WaitGroup
	for i, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probes[i] = s.checkNode(ctx, n, first)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	s.apply(probes)
}

func (s *Set) checkNode(ctx context.Context, n *node, first bool) probe {
	if n.conn != nil && n.conn.IsClosed() {
		n.conn = nil
	}
	if n.conn == nil {
		if first {
			// New waits for the first check, within ConnectTimeout.
			cctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
			c, err := pgx.ConnectConfig(cctx, n.check)
			cancel()
			if err != nil {
				return probe{err: cleanError(err), at: s.now()}
			}
			n.conn = c
		} else if c, err := s.dial(ctx, n); c == nil {
			return probe{err: err, at: s.now()}
		} else {
			n.conn = c
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
	defer cancel()
	var p probe
	var lsn *string
	err := n.conn.QueryRow(ctx, checkSQL).Scan(&p.inRecov, &lsn, &p.streaming)
	p.at = s.now()
	if err != nil {
		// A half-read connection cannot be trusted with the next check.
		closeCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		n.conn.Close(closeCtx)
		cancel()
		n.conn = nil
		p.err = cleanError(err)
		p.slow = !nodeDown(err)
		return p
	}
	if lsn != nil {
		if p.lsn, err = ParseLSN(*lsn); err != nil {
			p.err = err.Error()
			return p
		}
	}
	p.ok = true
	return p
}

// dial connects the checker to a node in the background, so that a node
// slow to accept connections does not hold up the checks of the others.
// It returns the connection once it is ready, or why there is none yet.
func (s *Set) dial(ctx context.Context, n *node) (*pgx.Conn, string) {
	if n.dialing == nil {
		n.dialing = make(chan dialed, 1)
		go func() {
			cctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
			defer cancel()
			c, err := pgx.ConnectConfig(cctx, n.check)
			if err != nil {
				n.dialing <- dialed{err: cleanError(err)}
				return
			}
			n.dialing <- dialed{conn: c}
		}()
	}
	select {
	case d := <-n.dialing:
		n.dialing = nil
		return d.conn, d.err
	default:
		return nil, "connecting"
	}
}

// apply publishes a tick's probes: the primary, each replica's lag and its
// place in rotation.
func (s *Set) apply(probes []probe) {
	if s.slowPrimary(probes) {
		return
	}
	var primaries []int
	for i, p := range probes {
		if p.ok && !p.inRecov {
			primaries = append(primaries, i)
		}
	}
	primaryUp := len(primaries) == 1
	if primaryUp {
		p := probes[primaries[0]]
		s.hist.add(p.at, p.lsn)
		s.lastPrimary = p.lsn
	} else {
		s.hist.reset()
	}
	s.setPrimary(primaries)

	for i, n := range s.nodes {
		before, after := n.update(func(st status) status {
			return s.next(st, probes[i], primaryUp)
		})
		s.logChange(n, before, after)
	}
}

// slowPrimary handles a tick in which the primary's check timed out for
// the first time while no other node took its place: on a loaded machine a
// healthy primary can be slow to answer once, and declaring it gone would
// fail every write until the next tick. The primary keeps its role for this
// tick and the replicas keep their last status, aging toward their own
// staleness bound; a second failure in a row, or any hard failure, counts
// as usual.
func (s *Set) slowPrimary(probes []probe) bool {
	p := s.primary.Load()
	if p == nil {
		return false
	}
	idx := -1
	for i, n := range s.nodes {
		if n == p {
			idx = i
		}
		if probes[i].ok && !probes[i].inRecov && n != p {
			return false // another node reports primary: decide as usual
		}
	}
	pr := probes[idx]
	if pr.ok || !pr.slow {
		return false
	}
	st := p.status()
	if st.role != RolePrimary || !st.reachable || st.bad > 0 {
		return false
	}
	p.update(func(st status) status {
		st.bad, st.good, st.err = 1, 0, pr.err
		return st
	})
	s.log.Warn("primary check timed out; keeping it as primary for one more check", "node", p.addr, "err", pr.err)
	return true
}

// next computes a node's new status from its probe.
func (s *Set) next(st status, p probe, primaryUp bool) status {
	st.checks++
	st.checked = p.at
	st.reachable, st.err = p.ok, p.err
	if p.ok {
		st.lsn, st.streaming = p.lsn, p.streaming
		st.role = RoleReplica
		if !p.inRecov {
			st.role = RolePrimary
		}
	}
	good := false
	switch {
	case !p.ok:
		st.lagKnown = false
	case st.role == RolePrimary:
		st.lagKnown, st.lag, st.lagBytes, st.primaryDown = true, 0, 0, false
		good = true
	case primaryUp:
		st.primaryDown = false
		st.lagBytes = max(int64(s.lastPrimary)-int64(st.lsn), 0)
		st.lag, st.lagKnown = s.hist.lag(p.at, st.lsn)
		good = st.lagKnown && st.streaming && st.lag <= s.opts.MaxLag && st.lagBytes <= s.opts.MaxLagBytes
	default:
		// No single primary to measure against. A replica that has replayed
		// everything the primary had written when it was last seen holds
		// the newest data there is, and keeps serving reads.
		st.lagKnown = false
		st.primaryDown = s.lastPrimary != 0 && st.lsn >= s.lastPrimary
		good = st.primaryDown
	}
	if good {
		st.good, st.bad = st.good+1, 0
		// A node good at its very first check has no history to distrust.
		if st.good >= s.opts.AdmitAfter || st.checks == 1 {
			st.admitted = true
		}
	} else {
		st.good, st.bad = 0, st.bad+1
		if st.bad >= s.opts.EjectAfter {
			st.admitted = false
		}
	}
	st.until = s.eligibleUntil(&st)
	return st
}

// logChange logs what changed for a node, once, not every tick.
func (s *Set) logChange(n *node, before, after *status) {
	switch {
	case before.role != after.role && after.role != RoleUnknown:
		s.log.Info("node role", "node", n.addr, "role", after.role.String(), "was", before.role.String())
	case before.reachable && !after.reachable:
		s.log.Warn("node unreachable", "node", n.addr, "err", after.err)
	case before.checks == 0 && !after.reachable:
		// Never reachable: a wrong password or database shows here once,
		// with the server's reason, rather than only in Stats.
		s.log.Warn("node unreachable at its first check", "node", n.addr, "err", after.err)
	case !before.reachable && after.reachable && before.checks > 0:
		s.log.Info("node reachable again", "node", n.addr)
	}
	if after.role != RoleReplica || before.admitted == after.admitted {
		return
	}
	if after.admitted {
		s.log.Info("replica admitted", "node", n.addr, "lag", after.lag, "lag_bytes", after.lagBytes)
	} else {
		s.log.Warn("replica ejected", "node", n.addr, "reason", reason(after, s.opts, s.now()), "lag", after.lag, "lag_bytes", after.lagBytes)
	}
}
