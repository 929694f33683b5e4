// Package replica sends one shard's statements to the right server: writes
// to its primary, reads to a streaming replica that is fresh enough.
//
// A [Set] holds a pgxpool.Pool for the primary and for each replica, and a
// background checker that asks every node, each Options.CheckInterval on a
// connection of its own, whether it is in recovery and where its WAL is.
//
// # The lag signal
//
// Byte lag is the primary's WAL write position minus the replica's replay
// position, both read in the same tick. Time lag is measured on this
// process's own clock: the set remembers where the primary's WAL was at each
// recent check, and a replica that has replayed position L holds everything
// the primary had at the newest check whose position was <= L, so its data
// is at most that old. A caught-up replica of an idle primary has lag 0, a
// paused or delayed replica's lag grows with the wall clock even while its
// byte lag is tiny, and no heartbeat table, write privilege or synchronised
// host clocks are needed. The figure is an upper bound, coarse by one check
// interval. A replica whose WAL receiver is not streaming is not counted as
// caught up while the primary is up.
//
// # Who serves a read
//
// A replica is eligible when it is reachable, admitted (ejected after
// Options.EjectAfter bad checks in a row, re-admitted after
// Options.AdmitAfter good ones, so a lag near the bound does not flap), its
// last check is at most three intervals old, and its lag plus the age of
// that check is within Options.MaxLag and its byte lag within
// Options.MaxLagBytes. Unknown lag is not eligible (fail closed). One
// exception: while no node reports primary, replicas that had replayed all
// the primary wrote before it went away keep serving reads, and Stats says
// so (NodeStats.PrimaryDown). Among eligible replicas a read picks the one
// with fewer outstanding queries (per weight) of two drawn at random.
//
// A read that fails at the connection level before it returned anything is
// retried once on another node; a node that refused or dropped the
// connection (not one that was merely slow) leaves rotation at once. A
// QueryRow whose node died after its row arrived keeps the row; a
// multi-row read cut off midway is not retried (router.Collect does that).
// A write is retried only when nothing reached the server
// (pgconn.SafeToRetry); a transaction never is.
//
// # Fallback
//
// With no eligible replica, a read goes to the primary
// (Options.Fallback = FallbackPrimary, the default) or fails with
// ErrNoReplica (FallbackError). Options.MaxFallbackRate caps fallback reads
// per second so that lagging replicas do not turn into a read flood on the
// primary; past the cap reads fail with ErrNoReplica. Watch
// Stats().RejectedReads and NodeStats.Fallbacks.
//
// # Writes and promotion
//
// Promotion is detected, not performed: the node that reports
// pg_is_in_recovery() = false takes writes. With no such node writes fail
// fast with ErrNoPrimary; with more than one (an old primary back after a
// failover) they fail with ErrSplitBrain rather than pick one. Errors are
// wrapped with the set's name and never contain a password.
//
// # Read-your-writes
//
// [Set.ExecLSN] and [Set.Tx] return the primary's WAL insert position after
// the commit, read in the same round trip. A read with ReadOptions.MinLSN
// goes only to a replica known to have replayed that position, probing one
// replica once when its last known position is older (waiting up to
// Options.MaxWait), else to the primary. While no node takes writes, such a
// read waits up to Options.ConnectTimeout for a reachable replica to replay
// its position rather than fail: with the primary gone, nothing newer than
// what the replicas received can exist. ReadOptions.Observe reports the
// position a read saw, so a session can make its reads monotonic.
package replica
