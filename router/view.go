package router

import (
	"context"
	"time"

	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// view is one version of the shard map as the router serves it: the map,
// and a state (replica set, cache listener) per shard. A call takes the
// view once and finishes on it; a new view replaces it atomically.
type view struct {
	m       *shard.Map
	shards  []*shardState // in keyspace order, as m.Shards()
	meta    map[*shardState]shardMeta
	version int64     // 0 for a static map
	changed time.Time // when the store recorded the version
	applied time.Time // when this router started using it
}

// shardMeta is what the topology store says of a shard in a view.
type shardMeta struct {
	tag    int64 // the map version its replica set was built from (its connections' pgshard.map_version)
	closed bool  // state fenced: writes wait for a map that opens it
	spec   topology.Shard
}

// current returns the view in use.
func (r *Router) current() *view { return r.cur.Load() }

// startListener starts st's cache listener under ctx; st.stopListen ends it.
func (r *Router) startListener(ctx context.Context, st *shardState) {
	lctx, stop := context.WithCancel(ctx)
	st.stopListen = stop
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.listen(lctx, st)
	}()
}
