package shard

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// ID is a position in the 64-bit keyspace: the hash of a key.
type ID uint64

// HashInt64 returns the keyspace ID of an integer key: xxhash64 of its 8-byte
// big-endian encoding. This decides where every row keyed by a user ID
// lives; golden tests pin its output.
func HashInt64(v int64) ID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return ID(xxhash.Sum64(b[:]))
}

// HashString returns the keyspace ID of a string key: xxhash64 of its bytes.
func HashString(s string) ID {
	return ID(xxhash.Sum64String(s))
}

// HashBytes returns the keyspace ID of a byte-string key: xxhash64 of b.
// HashBytes(b) == HashString(string(b)).
func HashBytes(b []byte) ID {
	return ID(xxhash.Sum64(b))
}
