package app

import (
	"context"

	"github.com/pgshard/pgshard/idgen"
	"github.com/pgshard/pgshard/router"
)

// idSource issues the server's IDs: an idgen.Generator whose node number
// is leased from PostgreSQL (the default), or a generator pinned to
// Options.NodeID.
type idSource interface {
	Next() (int64, error)
	Node() int
}

// pinnedIDs is the generator of a fixed node number (Options.NodeID >= 0):
// it is the operator's job that no two instances share it.
type pinnedIDs struct{ g *idGenerator }

func (p pinnedIDs) Next() (int64, error) { return p.g.Next(), nil }
func (p pinnedIDs) Node() int            { return int(p.g.node) }

// newIDs returns the pinned generator for node >= 0, else a leased one
// whose lease table lives on the first shard's primary.
func newIDs(ctx context.Context, r *router.Router, node int64, o Options) (idSource, func(), error) {
	if node >= 0 {
		g, err := newIDGenerator(node, o.Now)
		return pinnedIDs{g}, func() {}, err
	}
	g, err := idgen.New(ctx, r.Shards()[0].Primary(), idgen.Options{Logger: o.Logger, Now: o.Now})
	if err != nil {
		return nil, nil, err
	}
	return g, func() { _ = g.Close(context.WithoutCancel(ctx)) }, nil
}

// noID is the answer when no ID can be issued (the lease is not proven).
func noID(err error) error {
	return &httpError{503, "cannot issue an ID now: " + err.Error()}
}
