package replica

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// checkSQL asks a node, in one round trip, what it is, where its WAL is and
// which database system and timeline it belongs to. On a replica the
// position is the replay LSN; on a primary the write position, which is
// past every transaction whose commit was acknowledged (with
// synchronous_commit off, an acknowledged commit can trail it by up to
// wal_writer_delay, and so can the lag bound). A replica's timeline is its WAL
// receiver's; the receiver's columns are hidden from unprivileged roles,
// so a NULL timeline counts as unknown. Whether the receiver streams is
// not asked: a replica's lag bound, not its connection, decides.
const checkSQL = `SELECT pg_is_in_recovery(),
	(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
	(SELECT system_identifier FROM pg_control_system())::text,
	CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1)
		ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END`

// run checks every node each CheckInterval, and at once when a query saw a
// node fail (kick), until ctx ends.
func (s *Set) run(ctx context.Context) {
	defer close(s.done)
	defer s.closeCheckConns()
	t := time.NewTicker(s.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		s.checkAll(ctx)
	}
}

// kickCheck asks the checker to check every node now rather than at the
// next tick, without waiting. Kicks that arrive while one is pending merge.
func (s *Set) kickCheck() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Set) closeCheckConns() {
	for _, n := range s.nodes {
		if n.dialing != nil {
			if d := <-n.dialing; d.conn != nil {
				n.conn = d.conn
			}
			n.dialing = nil
		}
		if n.conn != nil {
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			n.conn.Close(closeCtx)
			cancel()
			n.conn = nil
		}
	}
}

// checkAll checks every node at once, then hands the answers, taken
// together, to the decision core, so that byte lag compares positions of
// one round.
func (s *Set) checkAll(ctx context.Context) {
	probes := make([]probe, len(s.nodes))
	var wg sync.WaitGroup
	for i, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probes[i] = s.checkNode(ctx, n)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	s.apply(probes)
}

// checkNode checks one node on the checker's own connection, dialing a
// fresh one in the background when there is none: a node slow to accept
// connections does not hold up the checks of the others, and a dial in
// progress is no answer rather than a failure.
func (s *Set) checkNode(ctx context.Context, n *node) probe {
	if n.conn != nil && n.conn.IsClosed() {
		n.conn = nil
	}
	if n.conn == nil {
		c, err, ready := s.dial(ctx, n)
		if !ready {
			return probe{kind: probePending}
		}
		if err != nil {
			now := s.clock()
			return probe{kind: dialProbeKind(ctx, err), err: cleanError(err), sent: now, at: now}
		}
		n.conn, n.fresh = c, true
	}
	qctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
	defer cancel()
	var (
		p          probe
		lsn, sysid *string
		tli        *int32
		wasFresh   = n.fresh
	)
	p.sent = s.clock()
	err := n.conn.QueryRow(qctx, checkSQL).Scan(&p.inRecov, &lsn, &sysid, &tli)
	p.at = s.clock()
	n.fresh = false
	if err != nil {
		// A half-read connection cannot be trusted with the next check.
		closeCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		n.conn.Close(closeCtx)
		cancel()
		n.conn = nil
		p.err = cleanError(err)
		var pgErr *pgconn.PgError
		switch cls := classify(ctx, err); {
		case cls == errDown:
			p.kind = probeDown
		case cls == errBusy || cls == errStatement:
			p.kind = probeBusy // it answered: it is up
		case wasFresh && !errors.As(err, &pgErr):
			// A fresh session that timed out or broke without a word from
			// the server. One that the server ended (a terminated
			// backend) is not evidence: the server answered.
			p.kind = probeFailed
		default:
			// One lost session is no evidence; look again at once on a
			// fresh connection.
			p.kind = probeLost
			s.dial(ctx, n)
		}
		return p
	}
	if lsn != nil {
		if p.lsn, err = ParseLSN(*lsn); err != nil {
			return probe{kind: probeBusy, err: err.Error(), sent: p.sent, at: p.at}
		}
	}
	if sysid != nil {
		p.sysid, _ = strconv.ParseUint(*sysid, 10, 64)
	}
	if tli != nil && *tli > 0 {
		p.tli = uint32(*tli)
	}
	p.kind = probeOK
	return p
}

// dialProbeKind classifies a failed dial. A server that answered the
// dial with an error (other than "cannot connect now") is up.
func dialProbeKind(ctx context.Context, err error) probeKind {
	var pgErr *pgconn.PgError
	switch cls := classify(ctx, err); {
	case cls == errDown:
		return probeDown
	case cls == errBusy, cls == errStatement, errors.As(err, &pgErr):
		return probeBusy
	}
	return probeFailed
}

// dial starts connecting the checker to a node in the background if it is
// not already, and returns the connection or the error once the dial has
// ended (ready), or ready=false while it is still in progress.
func (s *Set) dial(ctx context.Context, n *node) (c *pgx.Conn, err error, ready bool) {
	if n.dialing == nil {
		n.dialing = make(chan dialed, 1)
		go func() {
			cctx, cancel := context.WithTimeout(ctx, s.dialTimeout)
			defer cancel()
			cfg := n.check.Copy()
			if n.beforeConnect != nil {
				if err := n.beforeConnect(cctx, cfg); err != nil {
					n.dialing <- dialed{err: err}
					return
				}
			}
			c, err := pgx.ConnectConfig(cctx, cfg)
			n.dialing <- dialed{conn: c, err: err}
		}()
	}
	select {
	case d := <-n.dialing:
		n.dialing = nil
		return d.conn, d.err, true
	default:
		return nil, nil, false
	}
}

// apply hands a round of probes to the decision core and publishes what it
// decided: each node's status, and which node takes writes.
func (s *Set) apply(probes []probe) {
	s.mu.Lock()
	prev := make([]status, len(s.nodes))
	for i, n := range s.nodes {
		prev[i] = *n.status()
	}
	next, events := s.core.step(s.clock(), prev, probes)
	for i, n := range s.nodes {
		st := next[i]
		n.st.Store(&st)
	}
	s.publishPrimary()
	s.mu.Unlock()
	s.report(events)
}

// publishPrimary stores the core's write target where writers read it
// without a lock. Call with s.mu held.
func (s *Set) publishPrimary() {
	wasSplit := s.split.Load()
	s.split.Store(s.core.split)
	if s.core.primary < 0 {
		s.primary.Store(nil)
	} else {
		s.primary.Store(s.nodes[s.core.primary])
	}
	if s.core.split && !wasSplit {
		s.log.Error("split brain: several nodes report primary; writes refused")
	}
}

// report logs and traces the core's events, outside the lock.
func (s *Set) report(events []NodeEvent) {
	for _, e := range events {
		i, _ := strconv.Atoi(e.Node)
		e.Node, e.Shard = s.nodes[i].addr, s.name
		switch e.Kind {
		case NodeRole:
			s.log.Info("node role", "node", e.Node, "role", e.Role.String(), "was", e.WasRole.String())
		case NodeUnreachable:
			// Logged once per change; a node never reachable (a wrong
			// password or database) shows here at its first check, with
			// the server's reason.
			s.log.Warn("node unreachable", "node", e.Node, "err", e.Err)
		case NodeReachable:
			s.log.Info("node reachable again", "node", e.Node)
		case NodeRefused:
			s.log.Error("replica refused: it does not follow this shard's primary", "node", e.Node, "why", e.Err)
		case NodeAdmitted:
			s.log.Info("replica admitted", "node", e.Node, "lag", e.Lag, "lag_bytes", e.LagBytes)
		case NodeEjected:
			s.log.Warn("replica ejected", "node", e.Node, "reason", e.Reason, "lag", e.Lag, "lag_bytes", e.LagBytes, "err", e.Err)
		}
		s.trace.TraceNode(e)
	}
}
