package replica

import "time"

// NodeStats is a snapshot of one node. It holds no credentials.
type NodeStats struct {
	Addr        string        // host:port/database
	Role        Role          // as of the last check
	Eligible    bool          // may serve a replica read now
	Reason      string        // why not, as one word (Reason* constants); "" when eligible
	LSN         LSN           // replay position (replica) or WAL write position (primary)
	LagBytes    int64         // how far replay trails the primary's position
	Lag         time.Duration // bound on how old the replica's data is now (grows while no fresh primary position arrives)
	LagKnown    bool          // false when its position is older than every primary position held
	Down        bool          // evidence that the node is down; a primary that is down refuses writes
	SystemID    uint64        // the database system the node belongs to (0 until known)
	LastCheck   time.Time     // when the node was last checked
	Error       string        // the last check's error, if it failed
	Outstanding int64         // queries in flight
	Reads       uint64        // reads served
	Writes      uint64        // writes served
	Fallbacks   uint64        // reads served as primary fallback
	Failures    uint64        // connection failures seen by queries
	Pool        PoolStats
}

// PoolStats is the connection pool of one node.
type PoolStats struct {
	Total, Idle, Acquired, Max int32
}

// Stats is a snapshot of a set.
type Stats struct {
	Name          string
	Primary       string // address of the write target, "" when none (or it is down)
	SplitBrain    bool   // several nodes report primary; writes are refused
	PrimaryDown   bool   // no node takes writes: none reports primary, or it is down
	RejectedReads uint64 // reads refused with ErrNoReplica
	Nodes         []NodeStats
}

// reason says why a node with status st may not serve a replica read at
// now, as the core judges it, under the set's lock.
func (s *Set) reason(st *status, now time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.core.reason(st, now)
}

// Stats returns a snapshot of every node. It is cheap enough to call on
// every scrape of a metrics endpoint.
func (s *Set) Stats() Stats {
	now := s.clock()
	st := Stats{Name: s.name, SplitBrain: s.split.Load(), RejectedReads: s.rejected.Load()}
	if p := s.primary.Load(); p != nil && !p.status().down {
		st.Primary = p.addr
	} else {
		st.PrimaryDown = !st.SplitBrain
	}
	for _, n := range s.nodes {
		ns := n.status()
		why := s.reason(ns, now+s.margin) // as a read would judge it
		lag := time.Duration(0)
		if ns.lagKnown && ns.role == RoleReplica {
			lag = ns.lag(now)
		}
		errText := ns.err
		if why == ReasonForeign || why == ReasonUnproven {
			errText = ns.foreign
		}
		var last time.Time
		if ns.checks > 0 {
			last = s.base.Add(ns.checked)
		}
		ps := n.pool.Stat()
		st.Nodes = append(st.Nodes, NodeStats{
			Addr:        n.addr,
			Role:        ns.role,
			Eligible:    why == ReasonEligible,
			Reason:      why,
			LSN:         ns.lsn,
			LagBytes:    ns.lagBytes,
			Lag:         lag,
			LagKnown:    ns.lagKnown,
			Down:        ns.down,
			SystemID:    ns.sysid,
			LastCheck:   last,
			Error:       errText,
			Outstanding: n.outstanding.Load(),
			Reads:       n.reads.Load(),
			Writes:      n.writes.Load(),
			Fallbacks:   n.fallbacks.Load(),
			Failures:    n.failures.Load(),
			Pool:        PoolStats{Total: ps.TotalConns(), Idle: ps.IdleConns(), Acquired: ps.AcquiredConns(), Max: ps.MaxConns()},
		})
	}
	return st
}
