package router_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// A router whose map updates are held writes during and after a reshard's
// switch: once the source is fenced its writes are refused there (none
// commits on the source after the switch) and wait; when it hears of the
// new map they land on the targets that own their keys. None fails, none
// is lost.
func TestHeldRouterAcrossReshard(t *testing.T) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 3}.Logical())
	require.NoError(t, err)
	defer c.Close()
	t.Setenv("PGSHARD_TEST_PASSWORD", "pgshard")
	dsn := func(n *pgcluster.Node, db string) string {
		return fmt.Sprintf("postgres://postgres:${PGSHARD_TEST_PASSWORD}@127.0.0.1:%d/%s?sslmode=disable", n.Port(), db)
	}
	sh := c.Shards()
	for _, s := range sh {
		require.NoError(t, s.Primary.SuperExec(ctx, "CREATE TABLE held (id bigint PRIMARY KEY, v text)"))
	}
	require.NoError(t, sh[0].Primary.SuperExec(ctx, "CREATE DATABASE reshard_control"))
	store, err := topology.Open(ctx, dsn(sh[0].Primary, "reshard_control"))
	require.NoError(t, err)
	defer store.Close()
	require.NoError(t, store.Init(ctx))
	_, err = store.Apply(ctx, &topology.Map{Shards: []topology.Shard{{Name: "src", Range: "-", Primary: dsn(sh[0].Primary, "pgshard")}}},
		topology.ApplyOptions{Lookup: lookupPW})
	require.NoError(t, err)
	_, err = store.AddTable(ctx, topology.Table{Name: "held", Key: "id"}, topology.TableOptions{Lookup: lookupPW})
	require.NoError(t, err)

	m := reshard.New(store, reshard.Options{Lookup: lookupPW, StatusInterval: 100 * time.Millisecond, RetryInterval: 100 * time.Millisecond})
	_, err = m.Create(ctx, reshard.Spec{Name: "held", Source: "-", Targets: []reshard.Target{
		{Range: "-80", Primary: dsn(sh[1].Primary, "pgshard")}, {Range: "80-", Primary: dsn(sh[2].Primary, "pgshard")}}})
	require.NoError(t, err)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx, "held") }()
	require.Eventually(t, func() bool {
		st, err := m.Get(ctx, "held")
		return err == nil && st.Phase == reshard.PhaseStreaming
	}, time.Minute, 20*time.Millisecond)

	r, err := router.Open(ctx, router.Config{Store: store, Lookup: lookupPW, FenceWait: time.Minute, PollInterval: time.Second, Replica: fast})
	require.NoError(t, err)
	defer r.Close()
	router.HoldMapUpdates(r, true)
	var (
		mu    sync.Mutex
		acked []int64
		errs  []error
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := range 2 {
		wg.Go(func() {
			for i := int64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := int64(w)*1_000_000 + i
				_, err := r.User(id).Exec(ctx, "INSERT INTO held VALUES ($1, 'x')", id)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					acked = append(acked, id)
				}
				mu.Unlock()
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	time.Sleep(200 * time.Millisecond)
	_, err = m.SwitchWrites(ctx, "held", reshard.SwitchOptions{MaxLag: 10 * time.Second, Timeout: 20 * time.Second})
	require.NoError(t, err)
	atSwitch := count()
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, atSwitch, count(), "a held router commits nothing once the source is fenced")

	router.HoldMapUpdates(r, false)
	require.Eventually(t, func() bool { return count() > atSwitch+10 }, 30*time.Second, 10*time.Millisecond, "the held writes land on the targets")
	close(stop)
	wg.Wait()
	require.Empty(t, errs)

	targets := map[string]*pgcluster.Node{"-80": sh[1].Primary, "80-": sh[2].Primary}
	on := map[string]map[int64]bool{}
	for name, n := range targets {
		on[name] = map[int64]bool{}
		conn, err := pgx.Connect(ctx, n.SuperDSN())
		require.NoError(t, err)
		rows, err := conn.Query(ctx, "SELECT id FROM held")
		require.NoError(t, err)
		for rows.Next() {
			var id int64
			require.NoError(t, rows.Scan(&id))
			on[name][id] = true
		}
		require.NoError(t, rows.Err())
		conn.Close(ctx)
	}
	low := shard.Range{End: 0x8000000000000000}
	for _, id := range acked {
		owner := "80-"
		if low.Contains(shard.HashInt64(id)) {
			owner = "-80"
		}
		require.True(t, on[owner][id], "acknowledged %d is on its target %s", id, owner)
	}
	_, err = m.Complete(ctx, "held")
	require.NoError(t, err)
	require.NoError(t, <-done)
}
