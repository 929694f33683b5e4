// Package router is pgshard's face for services: it sends each user's
// statements to the shard that owns the user, reads from replicas that are
// fresh enough, caches hot reads coherently across processes, and runs
// queries on every shard.
//
// Open a Router with the shards' key ranges and servers, then pick a
// Target per statement:
//
//	r, err := router.Open(ctx, router.Config{Shards: []router.ShardConfig{
//		{Range: "-80", Primary: dsnA, Replicas: []string{dsnA1}},
//		{Range: "80-", Primary: dsnB, Replicas: []string{dsnB1}},
//	}})
//	_, err = r.User(42).Exec(ctx, "INSERT INTO users (id, name) VALUES ($1, $2)", 42, "Ada")
//	err = r.User(42).QueryRow(ctx, "SELECT name FROM users WHERE id = $1", 42).Scan(&name)
//
// # Consistency
//
// Reads are eventually consistent within the replica lag bound
// (replica.Options.MaxLag and MaxLagBytes). A [Session] in the context
// (see [WithSession]) adds read-your-writes and monotonic reads: each write
// records its commit's WAL position, read back in the same round trip, and
// each read goes only to a node that has replayed what the session wrote or
// saw. A session travels between requests as a short token ([Session.Token],
// [ParseSession]). [WithPrimary] sends a context's reads to primaries.
//
// # Caching
//
// [NewCache] makes a typed read-through cache. [Invalidate], called inside
// [Target.Tx], queues pg_notify in the transaction: when it commits, this
// process drops the keys at once and every other process using the same
// shards drops them when the notification arrives. After an invalidation,
// loads read only from nodes that have replayed it, so a lagging replica
// cannot put the old value back. Each router keeps one LISTEN connection
// per shard primary; on every (re)connect it listens first, then purges its
// caches, since it may have missed notifications, and while a shard's
// listener is down that shard's cached reads bypass the cache. Writes that
// do not call Invalidate reach caches only when entries expire
// (cache.Options.TTL): set a TTL unless every write invalidates.
//
// # The pgx surface
//
// A Target offers what a pgx user reaches for: [Target.BeginTx] (and
// [Target.BeginTxFunc]) with pgx.TxOptions, where a read-only transaction
// may run on a replica within the bound; [Target.SendBatch] and
// [Target.CopyFrom] on the primary, recording a session's position;
// [Router.Ping].
//
// # Across shards
//
// [Gather] runs one read on every shard at once and merges the rows, as a
// global top N when given an order and a limit; [Router.Group] splits user
// IDs by shard and [GatherGroups] reads many users' rows with one query per
// shard; [Router.ExecAll] runs a statement on every primary (schema
// changes). Each names every failed shard.
//
// # Observability
//
// [Router.Stats] returns every shard, node and cache figure without
// credentials; a metrics endpoint can read it on each scrape. Config.Tracer
// receives every read attempt and write outcome: Exec, Query, Tx, and the
// transactions, batches and copies of BeginTx, SendBatch and CopyFrom. pgx
// tracers are set per pool with replica.Options.ConfigurePool; they see the
// cache listeners' connections too.
package router
