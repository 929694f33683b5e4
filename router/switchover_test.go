package router_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/topology"
)

// TestFollowSwitchoverUnderLoad moves a shard's primary to its replica
// while writers run, the way an operator would with the store: fence the
// shard (routers hold its writes), let the replica catch up, stop the old
// primary, promote the replica, record it as the primary and open the
// shard. Every write a writer saw succeed must be on the new primary.
func TestFollowSwitchoverUnderLoad(t *testing.T) {
	ctx := context.Background()
	sw, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 1, Replicas: 1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sw.Close() })
	old, next := sw.Shards()[0].Primary, sw.Shards()[0].Replicas[0]

	s, _ := controlStore(t)
	m := &topology.Map{Shards: []topology.Shard{{Name: "s", Range: "-", Primary: storeDSN(old, "pgshard"), Replicas: []string{storeDSN(next, "pgshard")}}}}
	apply(t, s, m, "one shard")
	r := openStore(t, s, func(c *router.Config) { c.FenceWait = 30 * time.Second })
	require.NoError(t, r.ExecAll(ctx, "CREATE TABLE acked (writer int, n bigint, PRIMARY KEY (writer, n))"))

	var mu sync.Mutex
	acked := map[[2]int64]bool{}
	var failures atomic.Int64
	var firstErr atomic.Pointer[error]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for n := int64(0); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := r.User(int64(w)).Exec(ctx, "INSERT INTO acked VALUES ($1, $2)", w, n)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				mu.Lock()
				acked[[2]int64{int64(w), n}] = true
				mu.Unlock()
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	eventually(t, 30*time.Second, "writes before the switchover", func() bool { return count() >= 20 })

	require.NoError(t, m.SetState("s", topology.StateFenced))
	v := apply(t, s, m, "switchover: hold writes")
	eventually(t, 30*time.Second, "the router holds writes", func() bool { return r.Stats().Map.Version == v })
	before := count()
	require.NoError(t, next.WaitCaughtUp(ctx, old))
	require.NoError(t, old.Stop(ctx))
	require.NoError(t, next.Promote(ctx))
	require.NoError(t, m.SetPrimary("s", storeDSN(next, "pgshard")))
	require.NoError(t, m.RemoveReplica("s", storeDSN(old, "pgshard")))
	require.NoError(t, m.SetState("s", topology.StateServing))
	apply(t, s, m, "switchover: new primary")
	eventually(t, 30*time.Second, "writes after the switchover", func() bool { return count() >= before+20 })
	close(stop)
	wg.Wait()

	c, err := pgx.Connect(ctx, next.DSN())
	require.NoError(t, err)
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT writer, n FROM acked")
	require.NoError(t, err)
	stored := map[[2]int64]bool{}
	for rows.Next() {
		var k [2]int64
		require.NoError(t, rows.Scan(&k[0], &k[1]))
		stored[k] = true
	}
	require.NoError(t, rows.Err())
	lost := 0
	for k := range acked {
		if !stored[k] {
			lost++
		}
	}
	t.Logf("%d writes acknowledged, %d failed", len(acked), failures.Load())
	require.Zero(t, lost, "acknowledged writes missing on the new primary")
	if p := firstErr.Load(); p != nil {
		require.NoError(t, *p, "%d writes failed; the first", failures.Load())
	}
}
