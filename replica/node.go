package replica

import (
	"context"
	"sync/atomic"

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
	ReasonEligible    = ""
	ReasonUnreachable = "unreachable"
	ReasonStaleCheck  = "stale-check"
	ReasonLagging     = "lagging"
	ReasonEjected     = "ejected"
	ReasonRecovering  = "recovering"  // not yet admitted: too few good checks in a row
	ReasonLagUnknown  = "lag-unknown" // its replay position is older than every primary position held
	ReasonPrimary     = "primary"     // the node is a primary, not a replica
	ReasonForeign     = "foreign"     // it does not follow this shard's primary (Error says what it follows)
	ReasonUnproven    = "unproven"    // no primary seen yet to prove it follows
)

// node is one server of the set with its pool and counters.
type node struct {
	addr   string // host:port/database, never a password
	weight int
	pool   *pgxpool.Pool
	check  *pgx.ConnConfig
	// beforeConnect is the pool's BeforeConnect, applied to the checker's
	// connections too.
	beforeConnect func(context.Context, *pgx.ConnConfig) error

	st          atomic.Pointer[status] // written only under the set's core lock
	outstanding atomic.Int64
	reads       atomic.Uint64
	writes      atomic.Uint64
	fallbacks   atomic.Uint64
	failures    atomic.Uint64
	waiting     waiters // what waits on the node's answer; see sweep
	// silence is closed once the node has answered no check for
	// AttemptTimeout (see acquireCtx); silenced says so. Only the sweeper
	// changes them.
	silence  atomic.Pointer[chan struct{}]
	silenced bool

	// The checker's own connection and its background dial; touched only
	// by the checker goroutine.
	conn    *pgx.Conn
	fresh   bool // conn has not answered a check yet
	dialing chan dialed
}

// dialed is the outcome of a background dial: a connection or why not.
type dialed struct {
	conn *pgx.Conn
	err  error
}

func (n *node) status() *status { return n.st.Load() }
