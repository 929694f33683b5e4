// Package replica sends one shard's statements to the right server: writes
// to its primary, reads to a streaming replica whose staleness is proven
// within bounds.
//
// A [Set] holds a pgxpool.Pool for the primary and for each replica, and a
// background checker that asks every node, each Options.CheckInterval on a
// connection of its own, whether it is in recovery, where its WAL is, and
// which database system and timeline it belongs to.
//
// The set is a pure decision core and a thin I/O shell around it. The core
// (health.go, choose.go) takes one round of probe results, each classified
// as answered, pending (a dial in progress), lost (an established session
// broke or timed out), failed (a fresh connection failed or timed out),
// down (refused, shutting down, starting up) or busy (up, but no session:
// out of connections, a wrong password), and returns each node's new
// status; it reads no clock of its own and does no I/O. The shell
// (check.go, read.go, rows.go, write.go) runs the checks, carries out the
// core's decisions, and reports them to an optional [Tracer].
//
// # Invariants
//
// These hold after every step of the core; TestCoreInvariants drives it
// with random probe sequences (lost primary samples, timeouts, refusals,
// clock jumps, a promotion, a replica of another system far ahead) and
// checks them against the truth of every commit.
//
//  1. A replica serves a read only while its staleness is proven within
//     Options.MaxLag and Options.MaxLagBytes. The proof: the set samples
//     the primary's WAL write position at each check, on this process's
//     own monotonic clock, at the instant the check was sent; every write
//     acknowledged before that instant is at or below that position. A
//     replica that has replayed position L therefore holds every write
//     acknowledged before the latest sample at or below L, and its
//     staleness at instant t is at most t minus that sample's instant.
//     Unknown is not zero: a replica behind every sample held has no
//     proven bound and does not serve.
//  2. Losing the primary's samples never shortens a known lag. Samples are
//     kept across primary outages and failovers; without a fresh one the
//     bound on every replica grows with the time since the last, and a
//     replica leaves rotation when it passes MaxLag. So a process cut off
//     from its primary (which it cannot tell from a primary that is down
//     while others still write to it) serves replica reads at most MaxLag
//     stale, then follows Options.Fallback with an error that says why.
//  3. A primary is demoted only on evidence that it is down: a refused
//     connection, a server that says it is shutting down or starting up,
//     or three failed checks in a row, each on a fresh connection. Never on
//     one timed-out check, one lost session (pg_terminate_backend looks
//     like a crash from inside the session), a dial still in progress, or
//     a server out of connection slots. A primary that answers its check
//     takes writes.
//  4. A replica serves only once it is proven to follow this shard's
//     primary: it belongs to the same database system (the system
//     identifier of pg_control_system(), which a physical replica shares
//     with its primary and no separately initialised server does) and,
//     where its WAL receiver shows it, replays the primary's timeline. A
//     node that follows another system is refused (NodeStats.Reason
//     "foreign") with an error naming both system identifiers.
//
// A replica is also taken out of rotation after Options.EjectAfter bad
// checks in a row and re-admitted after Options.AdmitAfter good ones, so a
// lag near the bound does not flap; and when its last check is older than
// a few intervals. Among eligible replicas a read picks the one with fewer
// outstanding queries (per weight) of two drawn at random.
//
// # The attempt loop
//
// A read makes at most [MaxAttempts] sends: a read that fails at the
// connection level, or whose node stops answering, before it yields a row
// is sent once more to another eligible node or the primary. A node stops
// answering, for a read, when neither the read nor any check of that node
// was answered for Options.AttemptTimeout; a read that is merely slow on a
// node that answers its checks keeps waiting. A frozen replica costs a read
// about AttemptTimeout, not the caller's whole timeout. No timer is set
// per read: one sweeper per set, ten times per AttemptTimeout, breaks the
// connections of reads waiting on a replica that has fallen silent and
// ends the acquires waiting on it. A read with MinLSN whose primary fails
// it (refused, shutting down) waits, as with no primary, up to
// ConnectTimeout for a replica that was only behind its position. Reads on the
// primary and writes are never abandoned so: with no other node to turn
// to, they wait as long as the caller's context (and, to acquire a
// connection for a write, ConnectTimeout) allows. A QueryRow whose node
// died after its row arrived keeps the row.
//
// # Fallback
//
// With no eligible replica, a read goes to the primary
// (Options.Fallback = FallbackPrimary, the default) or fails with
// ErrNoReplica (FallbackError). Options.MaxFallbackRate caps fallback reads
// per second so that lagging replicas do not turn into a read flood on the
// primary; past the cap reads fail with ErrNoReplica. ErrNoReplica's text
// names each replica and why it may not serve.
//
// # Writes, outcomes and promotion
//
// Promotion is detected, not performed: the node that reports
// pg_is_in_recovery() = false takes writes. With no such node, or one that
// is down, writes fail fast with ErrNoPrimary; with more than one (an old
// primary back after a failover) they fail with ErrSplitBrain rather than
// pick one. A write is sent again (up to three sends) only when nothing
// reached the server or the server answered that it ended the session,
// which rolls the transaction back. A write whose COMMIT may have run but
// whose answer was lost (the connection broke, the node froze, the
// caller's context ended) returns an error wrapping ErrOutcomeUnknown;
// every other error means nothing was committed. Errors are wrapped with
// the set's name and never contain a password.
//
// # Read-your-writes
//
// [Set.ExecLSN] and [Set.Tx] return the primary's WAL insert position after
// the commit, read in the same round trip. A read with ReadOptions.MinLSN
// goes only to an eligible replica known to have replayed that position,
// probing one once when its last known position is older (waiting up to
// Options.MaxWait, or up to ConnectTimeout while no node takes writes),
// else to the primary. ReadOptions.Observe reports the position a read
// saw, so a session can make its reads monotonic.
package replica
