package router

import "github.com/pgshard/pgshard/replica"

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

// BarrierReceived returns the position up to which a shard's listener has
// proven, by barrier markers, that it handled every invalidation.
func BarrierReceived(r *Router, shard string) replica.LSN {
	for _, st := range r.current().shards {
		if st.name == shard {
			received, _ := st.barrier.stats()
			return received
		}
	}
	return 0
}

// OnGatherPlanned sets a function run between planning a Gather on the
// current map and running it; nil removes it.
func OnGatherPlanned(f func()) { gatherPlanned = f }
