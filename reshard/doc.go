// Package reshard moves a key range of one shard onto new shards while the
// application keeps writing, in the manner of Vitess's Reshard workflow.
//
// A workflow goes through these phases, each recorded in the control
// store (topology.Store) so that a process that crashed, or was stopped,
// can resume it with Manager.Run:
//
//   - created: Create checked the source (wal_level = logical, the
//     declared tables and their primary keys) and the targets (reachable,
//     empty, with the source's schema: copied with pg_dump when they have
//     none, identical otherwise).
//   - copying: a publication of the declared tables and a logical
//     replication slot that exports a snapshot; every declared table is
//     copied under that snapshot in binary COPY, each row sent to the
//     target whose range holds the xxhash64 of its key (a publication's
//     row filter cannot call xxhash64), reference tables to every target.
//     A copy that was interrupted starts again from empty targets and a
//     new slot.
//   - streaming: the slot's changes (pgoutput, decoded with pglogrepl)
//     are applied on the target that owns each row's key, in one
//     transaction per target and source transaction, which also records
//     the source position it reached in the target's table
//     pgshard.reshard_apply: a change is applied exactly once across
//     restarts. The position reported to the source as flushed is always
//     one that every target has committed.
//   - switching, switched: SwitchWrites fences the source, waits for the
//     targets to reach the source's position at the fence and publishes
//     the next map, in which the targets own the range. Before the fence
//     it makes a publication and a slot on each target: from then on, Run
//     streams the targets' changes back to the source (each applier marks
//     its transactions, which the other direction skips).
//   - reversed: Reverse fenced the targets, let the source apply all they
//     took, and published the map that gives the source its range back.
//   - completed, or cancelled: the slots and the publications are dropped.
//
// TRUNCATE of a declared table is refused on the source while a workflow
// runs, and a change to a moving table's columns stops the workflow with
// an error that names the table.
//
// What it does not do: an UPDATE that changes a row's key so that the row
// moves between two targets while a TOASTed column is left unchanged stops
// the workflow (the stream does not carry that value); Verify starts over
// when interrupted; writes made on the source after its fence by a client
// that is not a router (no pgshard.map_version) are not carried over; and
// the slot does not survive a failover of the source's primary before
// PostgreSQL 17 (the workflow stops with ErrSlotLost).
package reshard
