package cache

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestShardSize pins the layout that keeps a hit to one written cache line per shard.
func TestShardSize(t *testing.T) {
	var s shard[string, int]
	assert.Equal(t, uintptr(128), unsafe.Sizeof(s), "shard size in bytes (two cache lines)")
	assert.Equal(t, uintptr(64), unsafe.Offsetof(s.epoch),
		"shard.epoch offset (the lock and counters fill the first line)")
}
