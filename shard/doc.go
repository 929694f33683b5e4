// Package shard maps keys to shards: keyspace IDs, half-open key ranges and
// the shard map that assigns every ID to exactly one shard.
//
// A key becomes a 64-bit keyspace [ID] through xxhash64 ([HashInt64],
// [HashString], [HashBytes]). A shard owns a contiguous [Range] of IDs,
// written in hex the way Vitess made familiar: "-80" is the lower half of the
// keyspace, "80-" the upper half, "40-80" a quarter, "-" the whole of it. A
// [Map] checks that its ranges cover the keyspace with no gap and no overlap,
// and finds the shard of an ID with a binary search.
//
// Ranges rather than id % N: splitting one range in two moves only that
// range's rows, while changing N moves almost every row.
//
// The package is pure: no I/O, no goroutines, no global state. Every function
// is safe for concurrent use.
package shard
