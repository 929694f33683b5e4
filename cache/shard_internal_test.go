package cache

import (
	"testing"
	"unsafe"
)

// TestShardSize pins the layout that keeps a hit to one written cache line per shard.
func TestShardSize(t *testing.T) {
	var s shard[string, int]
	if got, want := unsafe.Sizeof(s), uintptr(128); got != want {
		t.Errorf("shard is %d bytes; want %d (two cache lines)", got, want)
	}
	if got, want := unsafe.Offsetof(s.epoch), uintptr(64); got != want {
		t.Errorf("shard.epoch at offset %d; want %d (the lock and counters fill the first line)", got, want)
	}
}
