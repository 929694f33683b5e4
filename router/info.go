package router

import (
	"context"
	"sync"

	"github.com/pgshard/pgshard/replica"
)

// ReadInfo tells who served the reads made with a context from
// WithReadInfo: an HTTP handler can report it (for instance in an
// X-Served-By header). It is safe for concurrent use; when several reads
// share it, the last one wins.
type ReadInfo struct {
	mu        sync.Mutex
	shard     string
	node      string
	role      replica.Role
	fromCache bool
}

// WithReadInfo returns a context whose reads record who served them in info.
func WithReadInfo(ctx context.Context, info *ReadInfo) context.Context {
	return context.WithValue(ctx, infoKey, info)
}

func readInfoFrom(ctx context.Context) *ReadInfo {
	i, _ := ctx.Value(infoKey).(*ReadInfo)
	return i
}

func (i *ReadInfo) set(shard string, sv replica.Served) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.shard, i.node, i.role, i.fromCache = shard, sv.Node, sv.Role, false
}

func (i *ReadInfo) setCache(shard string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.shard, i.node, i.role, i.fromCache = shard, "", replica.RoleUnknown, true
}

// ServedBy returns "cache", "replica", "primary", or "" before any read.
func (i *ReadInfo) ServedBy() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch {
	case i.fromCache:
		return "cache"
	case i.role == replica.RolePrimary:
		return "primary"
	case i.role == replica.RoleReplica:
		return "replica"
	}
	return ""
}

// Shard returns the shard of the last read, and Node its node's address
// (host:port/database; empty for a cache hit).
func (i *ReadInfo) Shard() string { i.mu.Lock(); defer i.mu.Unlock(); return i.shard }

// Node returns the address of the node that served the last read.
func (i *ReadInfo) Node() string { i.mu.Lock(); defer i.mu.Unlock(); return i.node }
