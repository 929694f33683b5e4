package router

// HoldMapUpdates stops (or lets again) a router that follows a topology
// store from serving new versions, as if it never heard of them.
func HoldMapUpdates(r *Router, hold bool) { r.follow.hold.Store(hold) }

// FloorReads returns how many batches of invalidations a shard's listener
// has handled, each with one read of the primary's position.
func FloorReads(r *Router, shard string) uint64 {
	for _, st := range r.current().shards {
		if st.name == shard {
			return st.floorReads.Load()
		}
	}
	return 0
}
