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
	Lag         time.Duration // how old the replica's data was at its last check
	LagKnown    bool          // false when no primary position was available to measure against
	PrimaryDown bool          // serving with the primary away, having replayed all it wrote
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
	Primary       string // address of the write target, "" when none
	SplitBrain    bool   // several nodes report primary; writes are refused
	PrimaryDown   bool   // no node reports primary
	RejectedReads uint64 // reads refused with ErrNoReplica
	Nodes         []NodeStats
}

// Stats returns a snapshot of every node. It is cheap enough to call on
// every scrape of a metrics endpoint.
func (s *Set) Stats() Stats {
	now := s.now()
	st := Stats{Name: s.name, SplitBrain: s.split.Load(), RejectedReads: s.rejected.Load()}
	if p := s.primary.Load(); p != nil {
		st.Primary = p.addr
	} else {
		st.PrimaryDown = !st.SplitBrain
	}
	for _, n := range s.nodes {
		ns := n.status()
		why := reason(ns, s.opts, now)
		ps := n.pool.Stat()
		st.Nodes = append(st.Nodes, NodeStats{
			Addr:        n.addr,
			Role:        ns.role,
			Eligible:    why == ReasonEligible,
			Reason:      why,
			LSN:         ns.lsn,
			LagBytes:    ns.lagBytes,
			Lag:         ns.lag,
			LagKnown:    ns.lagKnown,
			PrimaryDown: ns.primaryDown,
			LastCheck:   ns.checked,
			Error:       ns.err,
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
