package replica

import (
	"fmt"
	"time"
)

// This file is the set's decision core: what the set believes of each node,
// computed from the previous belief and one round of probe results. It does
// no I/O and reads no clock: every instant is a duration on the set's own
// monotonic clock, handed in by the shell (check.go). Its invariants are
// stated in the package documentation and checked after every step by
// TestCoreInvariants.

// probeKind classifies one check of one node.
type probeKind int

const (
	// probePending: no answer yet (a dial still in progress). No news.
	probePending probeKind = iota
	// probeOK: the node answered the check.
	probeOK
	// probeLost: an established session broke or timed out. One lost
	// session says nothing of the server (a terminated backend, a slow
	// moment); the next check runs on a fresh connection.
	probeLost
	// probeFailed: a fresh connection failed or timed out.
	probeFailed
	// probeDown: evidence that the server is down: it refused the
	// connection, or said it is shutting down or starting up.
	probeDown
	// probeBusy: the server answered but refused a session (too many
	// connections, authentication, missing database). It is up.
	probeBusy
)

func (k probeKind) String() string {
	return [...]string{"pending", "ok", "lost", "failed", "down", "busy"}[k]
}

// probe is one node's answer to a check.
type probe struct {
	kind     probeKind
	sent, at time.Duration // when the check was sent and answered, on the set's clock
	inRecov  bool
	lsn      LSN    // replay LSN of a replica, WAL write position of a primary
	sysid    uint64 // the node's system identifier
	tli      uint32 // timeline: a primary's current one, a replica's WAL receiver's (0: unknown)
	err      string
}

// primaryFailAfter is how many failed checks in a row, each on a fresh
// connection, demote a primary that never refused a connection: a frozen
// or unreachable host. One failure is never enough.
const primaryFailAfter = 3

// status is what the set believes of a node. It is immutable once
// published; readers load it without locks.
type status struct {
	checked   time.Duration // when the last check that told something finished
	reachable bool          // the last check that told something was answered
	down      bool          // evidence that the node is down (a primary refuses writes)
	role      Role
	lsn       LSN // replay LSN of a replica, WAL position of a primary
	sysid     uint64
	tli       uint32
	err       string

	// fresh is the instant before which every committed write is known to
	// be on this replica: the time the newest primary sample at or below
	// its replay position was taken. Its lag at any instant t is t - fresh.
	fresh     time.Duration
	lagKnown  bool
	lagBytes  int64
	foreign   string // why the replica is not proven to follow this set's primary; "" when proven
	lastGood  time.Duration
	checks    int
	fails     int           // failed checks on fresh connections in a row
	until     time.Duration // eligible for replica reads until this instant; 0 if not
	admitted  bool          // in rotation (hysteresis)
	good, bad int           // consecutive good and bad checks
}

// lag is the bound on the replica's staleness at instant now.
func (st *status) lag(now time.Duration) time.Duration { return max(now-st.fresh, 0) }

// sample is the primary's WAL write position at an instant: every write
// acknowledged as committed before the instant is at or below it.
type sample struct {
	at  time.Duration
	pos LSN
}

// core is the set's belief about its nodes and the logic that updates it.
// It is not safe for concurrent use; the shell serialises its calls.
type core struct {
	o       Options
	samples []sample // ring of the primary's recent positions, oldest first once full
	next    int
	full    bool
	sysid   uint64 // the shard's system identifier, learned from its primary
	tli     uint32 // the primary's timeline
	primary int    // index of the write target, -1 when none or several
	split   bool
	// newest is the newest primary sample; zero before the first.
	newest sample
}

func newCore(o Options) *core {
	n := min(max(int(4*o.MaxLag/o.CheckInterval)+2, 8), 4096)
	return &core{o: o, samples: make([]sample, n), primary: -1}
}

// addSample records a primary position. Samples are kept across primary
// outages and failovers: each remains a true statement about what had
// committed by its instant, so losing contact never shortens a known lag.
func (c *core) addSample(s sample) {
	c.samples[c.next] = s
	c.next = (c.next + 1) % len(c.samples)
	if c.next == 0 {
		c.full = true
	}
	c.newest = s
}

// freshAt returns the latest instant of a sample at or below pos, and
// false when every sample held is above pos: then the replica's staleness
// is not proven, however short the history. It scans every sample rather
// than trusting their order, so that neither a clock that stood still nor
// a failover's lower positions can make it claim too much.
func (c *core) freshAt(pos LSN) (time.Duration, bool) {
	n := c.next
	if c.full {
		n = len(c.samples)
	}
	var at time.Duration
	ok := false
	for _, s := range c.samples[:n] {
		if s.pos <= pos && (!ok || s.at > at) {
			at, ok = s.at, true
		}
	}
	return at, ok
}

// step applies one round of probes, one per node, and returns the nodes'
// new statuses and the events worth reporting.
func (c *core) step(now time.Duration, prev []status, probes []probe) ([]status, []NodeEvent) {
	next := make([]status, len(prev))
	copy(next, prev)

	// Roles first: which node takes writes.
	var primaries []int
	for i, p := range probes {
		if p.kind == probeOK && !p.inRecov {
			primaries = append(primaries, i)
		}
	}
	oldPrimary := c.primary
	switch len(primaries) {
	case 1:
		c.primary, c.split = primaries[0], false
	case 0:
		c.split = false // keep the last primary; its own status says whether it is down
	default:
		c.primary, c.split = -1, true
	}
	if len(primaries) == 1 {
		p := probes[c.primary]
		c.addSample(sample{at: p.sent, pos: p.lsn})
		c.sysid = p.sysid
		c.tli = p.tli
	}
	if c.primary >= 0 && len(primaries) == 0 && probes[c.primary].kind == probeOK && probes[c.primary].inRecov {
		c.primary = -1 // the primary went into recovery: it was demoted
	}

	var events []NodeEvent
	for i := range next {
		before := prev[i]
		next[i] = c.nodeStep(now, before, probes[i], i == c.primary)
		events = c.changes(events, i, before, next[i], oldPrimary)
	}
	return next, events
}

// nodeStep computes one node's new status from its probe.
func (c *core) nodeStep(now time.Duration, st status, p probe, isPrimary bool) status {
	switch p.kind {
	case probePending:
		return c.withUntil(st)
	case probeBusy:
		// Up, but no session (out of connections, a wrong password or
		// database): nothing learned of its role or position, and no
		// evidence that it is down; it cannot serve reads meanwhile.
		st.checks++
		st.checked, st.reachable, st.err = p.at, false, p.err
		st.fails, st.down = 0, false
		if st.role != RolePrimary {
			st = c.bad(st)
		}
		return c.withUntil(st)
	case probeLost:
		st.err = p.err
		if st.role != RolePrimary {
			st = c.bad(st)
		}
		return c.withUntil(st)
	case probeFailed, probeDown:
		st.checks++
		st.checked, st.reachable, st.err = p.at, false, p.err
		st.lagKnown = false
		st.fails++
		st.down = st.down || p.kind == probeDown || st.fails >= primaryFailAfter
		st = c.bad(st)
		return c.withUntil(st)
	}

	st.checks++
	st.checked, st.reachable, st.down, st.fails, st.err = p.at, true, false, 0, ""
	st.lastGood = p.at
	st.lsn, st.sysid, st.tli = p.lsn, p.sysid, p.tli
	if !p.inRecov {
		st.role = RolePrimary
		st.lagKnown, st.lagBytes, st.foreign = true, 0, ""
		st.fresh = p.at
		st.good, st.bad, st.admitted = st.good+1, 0, true
		return c.withUntil(st)
	}
	st.role = RoleReplica
	st.foreign = c.follows(p)
	if at, ok := c.freshAt(p.lsn); ok && st.foreign == "" {
		if !st.lagKnown || at > st.fresh {
			st.fresh = at
		}
		st.lagKnown = true
	} else if st.foreign != "" || !st.lagKnown {
		st.lagKnown = false
	}
	st.lagBytes = max(int64(c.newest.pos)-int64(p.lsn), 0)
	if st.foreign == "" && st.lagKnown && st.lag(p.at) <= c.o.MaxLag && st.lagBytes <= c.o.MaxLagBytes {
		st.good, st.bad = st.good+1, 0
		// A node good at its very first check has no history to distrust.
		if st.good >= c.o.AdmitAfter || st.checks == 1 {
			st.admitted = true
		}
	} else {
		st = c.bad(st)
	}
	return c.withUntil(st)
}

// follows returns "" when a replica's probe proves it follows this set's
// primary: the same system identifier (a physical replica shares its
// primary's) and, when both are known, the same timeline. Otherwise it
// says why not.
func (c *core) follows(p probe) string {
	switch {
	case c.sysid == 0:
		return "no primary seen yet to compare its system identifier with"
	case p.sysid != c.sysid:
		return fmt.Sprintf("it belongs to database system %d, the shard's primary to %d", p.sysid, c.sysid)
	case p.tli != 0 && c.tli != 0 && p.tli != c.tli:
		return fmt.Sprintf("it replays timeline %d, the shard's primary writes timeline %d", p.tli, c.tli)
	}
	return ""
}

func (c *core) bad(st status) status {
	st.good, st.bad = 0, st.bad+1
	if st.bad >= c.o.EjectAfter {
		st.admitted = false
	}
	return st
}

// withUntil sets the last instant at which st allows a replica read, so that
// pick decides with one comparison: the data ages past MaxLag at
// fresh + MaxLag, and the check goes stale (staleAfter) after it ran.
func (c *core) withUntil(st status) status {
	st.until = 0
	if st.role == RoleReplica && st.reachable && st.admitted && st.lagKnown && st.foreign == "" &&
		st.lagBytes <= c.o.MaxLagBytes {
		st.until = min(st.fresh+c.o.MaxLag, st.checked+c.staleAfter())
	}
	return st
}

// staleAfter is how old a replica's last check may be while it serves: a
// few intervals, and never less than a check may take. It is about
// availability (a node that stopped answering checks leaves rotation), not
// staleness, which the lag bound keeps.
func (c *core) staleAfter() time.Duration {
	return max(3*c.o.CheckInterval, c.o.CheckTimeout+c.o.CheckInterval)
}

// queryFailed records a connection failure that a query saw. A replica
// leaves rotation until a check admits it again. A primary keeps its role:
// one lost session is no evidence (a terminated backend looks the same as
// a crash from inside the session); the shell checks it at once on a fresh
// connection, and a refusal there demotes it.
//
// A connection refused by a fresh dial of the pool is evidence, though, and
// demotes a primary (down) as a check's refusal would.
func (c *core) queryFailed(st status, err string, down bool) status {
	if down {
		st.down, st.reachable = true, false
	}
	if st.role == RolePrimary {
		if down {
			st.err = err
		}
		return st
	}
	st.err = err
	st.admitted, st.good, st.bad = false, 0, max(st.bad, c.o.EjectAfter)
	return c.withUntil(st)
}

// reason says why a node may not serve a replica read at instant now, or
// "" when it may.
func (c *core) reason(st *status, now time.Duration) string {
	switch {
	case st.role == RolePrimary:
		return ReasonPrimary
	case st.checks == 0:
		return ReasonRecovering
	case !st.reachable:
		return ReasonUnreachable
	case st.foreign != "":
		if c.sysid == 0 {
			return ReasonUnproven
		}
		return ReasonForeign
	case !st.lagKnown:
		return ReasonLagUnknown
	case st.lag(now) > c.o.MaxLag || st.lagBytes > c.o.MaxLagBytes:
		return ReasonLagging
	case !st.admitted && st.good > 0:
		return ReasonRecovering
	case !st.admitted:
		return ReasonEjected
	case now > st.checked+c.staleAfter():
		return ReasonStaleCheck
	}
	return ReasonEligible
}

// changes appends the events that tell how a node's status changed.
func (c *core) changes(events []NodeEvent, i int, before, after status, oldPrimary int) []NodeEvent {
	e := NodeEvent{Role: after.role, LagKnown: after.lagKnown, LagBytes: after.lagBytes, Err: after.err}
	if after.lagKnown && after.role == RoleReplica {
		e.Lag = after.lag(after.checked)
	}
	add := func(k NodeEventKind) {
		e := e
		e.Kind = k
		e.Node = fmt.Sprint(i) // the shell replaces it with the address
		events = append(events, e)
	}
	if before.role != after.role && after.role != RoleUnknown {
		e.WasRole = before.role
		add(NodeRole)
	}
	switch {
	case (before.reachable || before.checks == 0) && !after.reachable && after.checks > before.checks:
		add(NodeUnreachable)
	case !before.reachable && after.reachable && before.checks > 0:
		add(NodeReachable)
	}
	if after.role == RoleReplica && after.foreign != "" && before.foreign != after.foreign && c.sysid != 0 {
		e.Err = after.foreign
		add(NodeRefused)
		e.Err = after.err
	}
	if after.role == RoleReplica && before.admitted != after.admitted {
		if after.admitted {
			add(NodeAdmitted)
		} else {
			e.Reason = c.reason(&after, after.checked)
			add(NodeEjected)
		}
	}
	return events
}
