package router_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// BenchmarkFollow compares a write through a router that follows a
// topology store with the same write through a static router:
//
//   - write/static-vs-static: two static routers, for the measure's bias
//     and noise.
//   - write/store-vs-static: no range has moved; the map version the
//     following router's connections carry costs nothing.
//   - write-after-move/store-vs-static: the written shard has lost half
//     of its range, and its fence has been relaxed (its triggers removed
//     once every older map's lease had ended): the steady state after a
//     move, where the following router pays for its lease check.
//
// (BenchmarkFence in package topology measures the fence's trigger
// itself, before and after it is relaxed.)
func BenchmarkFollow(b *testing.B) {
	ctx := context.Background()
	static := benchRouter(b)
	s, _ := controlStoreB(b)
	shortLeases(b)
	m := storeMap()
	_, err := s.Apply(ctx, m, applyOpts("bench"))
	require.NoError(b, err)
	following := openStoreB(b, s)
	const upd = "UPDATE users SET name = $2 WHERE id = $1"
	compare := func(b *testing.B, id int64) {
		ts, tf := static.User(id), following.User(id)
		interleave(b, "store/static", func(i int) {
			if _, err := ts.Exec(ctx, upd, id, fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		}, func(i int) {
			if _, err := tf.Exec(ctx, upd, id, fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.Run("write/static-vs-static", func(b *testing.B) { // the measure's own bias and noise
		other := open(b, config(b, cluster))
		ts, to := static.User(42), other.User(42)
		interleave(b, "static/static", func(i int) {
			if _, err := ts.Exec(ctx, upd, int64(42), fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		}, func(i int) {
			if _, err := to.Exec(ctx, upd, int64(42), fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("write/store-vs-static", func(b *testing.B) { compare(b, 42) })

	id, i, moved := shrinkOne(b, m)
	opts := applyOpts("bench: move " + moved)
	opts.Lease = testLease
	_, err = s.Apply(ctx, m, opts)
	require.NoError(b, err)
	onShard := primaryConn(b, cluster.Shards()[i].Primary, 0)
	eventually(b, 60*time.Second, "the fence relaxed and the router on version 2", func() bool {
		st, _, err := topology.ReadFence(ctx, onShard)
		var triggers int
		require.NoError(b, onShard.QueryRow(ctx, "SELECT count(*) FROM pg_trigger WHERE tgname = 'pgshard_fence'").Scan(&triggers))
		return err == nil && !st.RelaxedAt.IsZero() && triggers == 0 && following.Stats().Map.Version == 2
	})
	b.Run("write-after-move/store-vs-static", func(b *testing.B) { compare(b, id) })
}

// shrinkOne changes m so that one shard gives the half of its range that
// does not hold a benchmark user to its neighbour; it returns that user,
// the shard's index and the range moved.
func shrinkOne(b *testing.B, m *topology.Map) (int64, int, string) {
	for id := int64(1); id <= 100; id++ {
		for i := range m.Shards {
			rng, err := shard.ParseRange(m.Shards[i].Range)
			require.NoError(b, err)
			if !rng.Contains(shard.HashInt64(id)) {
				continue
			}
			halves, err := rng.Split(2)
			require.NoError(b, err)
			lowKept := halves[0].Contains(shard.HashInt64(id))
			switch {
			case lowKept && i+1 < len(m.Shards):
				next, _ := shard.ParseRange(m.Shards[i+1].Range)
				m.Shards[i].Range = halves[0].String()
				m.Shards[i+1].Range = shard.Range{Start: halves[1].Start, End: next.End}.String()
				return id, i, halves[1].String()
			case !lowKept && i > 0:
				prev, _ := shard.ParseRange(m.Shards[i-1].Range)
				m.Shards[i].Range = halves[1].String()
				m.Shards[i-1].Range = shard.Range{Start: prev.Start, End: halves[0].End}.String()
				return id, i, halves[0].String()
			}
		}
	}
	b.Fatal("no benchmark user to keep")
	return 0, 0, ""
}
