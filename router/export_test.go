package router

// HoldMapUpdates stops (or lets again) a router that follows a topology
// store from serving new versions, as if it never heard of them.
func HoldMapUpdates(r *Router, hold bool) { r.follow.hold.Store(hold) }
