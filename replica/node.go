package replica

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Role is what a node reported at its last check.
type Role int

const (
	// RoleUnknown: the node has not answered a check yet.
	RoleUnknown Role = iota
	// RolePrimary: the node accepts writes (pg_is_in_recovery() is false).
	RolePrimary
	// RoleReplica: the node is a streaming replica in recovery.
	RoleReplica
)

// String returns "primary", "replica" or "unknown".
func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleReplica:
		return "replica"
	}
	return "unknown"
}

// Why a replica is not eligible, as one word each (NodeStats.Reason).
const (
	ReasonEligible     = ""
	ReasonUnreachable  = "unreachable"
	ReasonStaleCheck   = "stale-check"
	ReasonLagging      = "lagging"
	ReasonEjected      = "ejected"
	ReasonRecovering   = "recovering"   // not yet admitted: too few good checks in a row
	ReasonDisconnected = "disconnected" // its WAL receiver is not streaming
	ReasonLagUnknown   = "lag-unknown"  // no primary position to measure against
	ReasonPrimary      = "primary"      // the node is a primary, not a replica
)

// status is what the checker knows of a node. It is immutable once
// published; readers load it without locks.
type status struct {
	checked   time.Time // when the last check finished, successful or not
	reachable bool
	role      Role
	lsn       LSN  // replay LSN of a replica, WAL write position of a primary
	streaming bool // a replica's WAL receiver is streaming
	err       string

	lagKnown    bool
	lag         time.Duration // at checked
	lagBytes    int64
	primaryDown bool // lag measured against the last position seen before the primary went away

	checks    int           // checks done
	until     time.Duration // eligible for replica reads until this instant of the set's clock; 0 if not
	admitted  bool          // in rotation (hysteresis)
	good, bad int           // consecutive good and bad checks
}

// node is one server of the set with its pool and counters.
type node struct {
	addr   string // host:port/database, never a password
	weight int
	pool   *pgxpool.Pool
	check  *pgx.ConnConfig

	st          atomic.Pointer[status]
	mu          sync.Mutex // serialises writers of st
	outstanding atomic.Int64
	reads       atomic.Uint64
	writes      atomic.Uint64
	fallbacks   atomic.Uint64
	failures    atomic.Uint64

	// The checker's own connection and its background dial; touched only
	// by the checker goroutine.
	conn    *pgx.Conn
	dialing chan dialed
}

// dialed is the outcome of a background dial: a connection or why not.
type dialed struct {
	conn *pgx.Conn
	err  string
}

func (n *node) status() *status { return n.st.Load() }

// update replaces the node's status under its lock.
func (n *node) update(f func(s status) status) (before, after *status) {
	n.mu.Lock()
	defer n.mu.Unlock()
	before = n.st.Load()
	s := f(*before)
	n.st.Store(&s)
	return before, &s
}

// eject marks the node unreachable and out of rotation at once, after a
// connection failure seen by a query rather than by the checker.
func (n *node) eject(now time.Time, cause string) (wasAdmitted bool) {
	before, _ := n.update(func(s status) status {
		s.admitted, s.good, s.reachable, s.err = false, 0, false, cause
		s.until = 0
		s.checked = now
		return s
	})
	return before.admitted
}
