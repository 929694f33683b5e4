// Package cache keeps hot values in process memory: a typed, sharded, expiring LRU with
// single-flight loads and invalidation that never lets a stale load win.
//
// It knows nothing of PostgreSQL. Keys are spread over lock-striped shards by a seeded hash;
// each shard is a segmented LRU built on github.com/hashicorp/golang-lru/v2/simplelru, in which
// a key read twice outlives a scan of keys read once. Expiry is stored in each entry and checked
// on read; one janitor goroutine per cache advances a coarse clock and sweeps expired entries
// until Close.
//
// # Consistency
//
// A value is served until its TTL passes, it is evicted, or it is invalidated by Delete, Set
// or Purge. Invalidation is immediate for this process: once Delete(k) or Purge returns, no
// lookup sees the old value, and no load that started before it can store its result
// afterwards, because each load holds a ticket for its key that invalidation revokes and that
// is checked, under the shard's lock, before the store. The lookups that were already waiting
// for such a load still get its result: their reads overlapped the write. A lookup that starts
// after the invalidation runs a load of its own.
//
// Stale-while-revalidate (Options.RefreshAfter) knowingly serves a value older than
// RefreshAfter, never older than TTL, while one background load replaces it.
//
// The cache is local: keeping several processes coherent is the caller's job (the router
// invalidates through PostgreSQL LISTEN/NOTIFY).
package cache
