// Package topology keeps the shard map as versioned data in a control
// PostgreSQL database, and fences each shard's primary so that a write
// routed with an old map is refused inside its own transaction.
//
// A Store holds every version of the map in the schema pgshard of the
// control database. A version is never changed: Apply inserts version N+1
// in a transaction that also notifies the channel pgshard_topology, and
// records who made the change, when and why. Routers follow the store
// (router.Config.Store): they LISTEN, poll as a backstop, and keep serving
// on their last map while the control database is away.
//
// No password is stored. A DSN in a map names its password through an
// environment variable ($VAR or ${VAR}, expanded by each process that
// connects) or a passfile (passfile=/path); a DSN with a literal password is
// refused.
//
// # The fence
//
// Safety never depends on a router hearing a change. Each connection a
// router opens to a shard carries, in its startup packet, the map version
// its replica set was built from (the run-time parameter
// pgshard.map_version). When Apply takes a range away from a shard, or
// fences the shard as a whole, it first installs a statement-level trigger
// on every table of that shard's primary that refuses a write from a router
// whose map is older than the change, with SQLSTATE PGS01 (see IsFenced).
// Installing it waits (at most ApplyOptions.LockTimeout) for the write
// transactions in flight, one table at a time so that it cannot deadlock
// with them, and then for every transaction that had already written: no
// write that began under the old map commits after the fence. Until a
// shard loses a range it has no trigger, so steady state costs nothing;
// see BENCHMARKS.md for what the trigger costs while installed.
//
// # Leases, and relaxing a fence
//
// The trigger need not stay. A router writes to a shard only while it
// holds a lease on it: it renews the lease each time it reads the shard's
// fence (every 500 ms, and before a write that finds none) and finds no
// fence newer than its map; the lease then lasts FenceState.Lease
// (ApplyOptions.Lease, DefaultLease by default) from when the read was
// sent. A router with an older map cannot renew, so it has lost its lease
// at most one lease after the fence; InstallFence records twice that as
// FenceState.RelaxAfter, and from then RelaxFence (which routers call
// themselves) waits for the transactions begun before it and removes the
// triggers. From then on the lease, not the trigger, keeps a router with
// an old map from writing: it holds the write, reloads, and writes on the
// new map within FenceWait. This assumes that a write a router sends while
// it holds its lease reaches the shard within a lease (a process paused
// longer between its check and its write is not covered). A shard fenced
// as a whole keeps its triggers until it is opened.
//
// # Tables created after a fence
//
// A fence puts its trigger on the tables that exist. GuardNewTables, run
// once per shard by a superuser (InstallFence does it when its connection
// is a superuser's), adds an event trigger that gives each table created
// while a fence holds the fence's current condition, whoever installed
// the fence. Without it, a table created after a fence is guarded only by
// the routers' leases: a router with an older map stops writing to the
// shard when it next reads the fence, and at the latest when its lease
// ends.
//
// The fence lives in each shard's schema pgshard, whose tables it never
// fences. A role named pgshard finds that schema first in the default
// search_path ("$user", public) and would create its own tables there:
// give such a role a search_path without "$user".
//
// Reads follow the fence too: a router that follows the store reads each
// shard's fence on its primary every 500 ms, and once a fence says the
// shard's range moved in a map it does not have, it holds that shard's
// reads until it has that map; so a router that missed a change reads a
// moved range's old copy for about a second at most.
package topology
