package router

import (
	"context"
	"testing"
	"time"
)

// BenchmarkLeaseCheck measures what a following router adds to each write
// once its lease is held: an atomic load and a read of the monotonic
// clock. (BenchmarkFollow measures whole writes, with the noise of the
// network and the server.)
func BenchmarkLeaseCheck(b *testing.B) {
	f := &follower{epoch: time.Now()}
	r := &Router{follow: f}
	f.r = r
	st := &shardState{name: "a"}
	st.lease.end.Store(int64(time.Hour))
	t := Target{r: r, s: st}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := t.leaseErr(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
