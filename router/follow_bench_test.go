package router_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkFollow compares a write through a router that follows a
// topology store with the same write through a static router, both on
// one shard with no fence installed: the map version its connections
// carry costs nothing. (BenchmarkFence in package topology measures a
// shard that has a fence.)
func BenchmarkFollow(b *testing.B) {
	ctx := context.Background()
	static := benchRouter(b)
	s, _ := controlStoreB(b)
	m := storeMap()
	_, err := s.Apply(ctx, m, applyOpts("bench"))
	require.NoError(b, err)
	following := openStoreB(b, s)
	const id = int64(42)
	const upd = "UPDATE users SET name = $2 WHERE id = $1"
	ts, tf := static.User(id), following.User(id)
	b.Run("write/store-vs-static", func(b *testing.B) {
		interleave(b, "store/static", func(i int) {
			if _, err := ts.Exec(ctx, upd, id, fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		}, func(i int) {
			if _, err := tf.Exec(ctx, upd, id, fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		})
	})
}
