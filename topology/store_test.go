package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/topology"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	s := controlDB(t)
	_, err := s.Current(ctx)
	require.ErrorIs(t, err, topology.ErrNotInitialized)
	require.NoError(t, s.Init(ctx))
	require.NoError(t, s.Init(ctx), "init twice")
	_, err = s.Current(ctx)
	require.ErrorIs(t, err, topology.ErrNoMap)

	m := clusterMap()
	plan, err := s.Apply(ctx, m, topology.ApplyOptions{By: "tester", Reason: "first"})
	require.NoError(t, err)
	require.Nil(t, plan.From)
	require.Empty(t, plan.Fences)
	require.Equal(t, int64(1), plan.To.Version)

	cur, err := s.Current(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), cur.Version)
	require.Equal(t, "tester", cur.ChangedBy)
	require.Equal(t, "pgshard", cur.DBUser)
	require.Equal(t, "first", cur.Reason)
	require.WithinDuration(t, time.Now(), cur.ChangedAt, time.Minute)
	require.Equal(t, m.Shards[0].Primary, cur.Shards[0].Primary, "the DSN is stored with its variable")
	require.Equal(t, topology.StateServing, cur.Shards[1].State)

	gap := cur.Clone()
	gap.Shards[1].Range = "90-"
	_, err = s.Apply(ctx, gap, topology.ApplyOptions{})
	require.ErrorIs(t, err, topology.ErrInvalidMap)
	require.ErrorContains(t, err, "gap 80-90 between shards \"a\" (-80) and \"b\" (90-)")

	two := cur.Clone()
	two.Shards[1].Replicas = []string{"postgres://pgshard:${" + pwVar + "}@127.0.0.1:1/pgshard"}
	_, err = s.Apply(ctx, two, topology.ApplyOptions{Expect: 1, Reason: "a replica"})
	require.NoError(t, err)
	_, err = s.Apply(ctx, two, topology.ApplyOptions{Expect: 1})
	require.ErrorIs(t, err, topology.ErrConflict)

	dry, err := s.Apply(ctx, cur, topology.ApplyOptions{DryRun: true})
	require.NoError(t, err)
	require.Equal(t, int64(3), dry.To.Version)
	hist, err := s.History(ctx, 0)
	require.NoError(t, err)
	require.Len(t, hist, 2, "a dry run stores nothing")
	require.Equal(t, []int64{2, 1}, []int64{hist[0].Version, hist[1].Version})
	require.Equal(t, "a replica", hist[0].Reason)
	require.Len(t, hist[0].Shards[1].Replicas, 1)

	one, err := s.Version(ctx, 1)
	require.NoError(t, err)
	require.Empty(t, one.Shards[1].Replicas)
	_, err = s.Version(ctx, 9)
	require.ErrorContains(t, err, "no map version 9")
}

var execControl = topology.ExecControl

func TestStoreHistoryIsImmutable(t *testing.T) {
	ctx := context.Background()
	s := controlDB(t)
	require.NoError(t, s.Init(ctx))
	_, err := s.Apply(ctx, clusterMap(), topology.ApplyOptions{})
	require.NoError(t, err)
	// The store's own connection string, through a second store, is the
	// simplest way to reach its database as its user.
	for _, stmt := range []string{
		"UPDATE pgshard.maps SET reason = 'rewritten'",
		"DELETE FROM pgshard.map_shards",
		"INSERT INTO pgshard.maps (version, changed_by, reason) VALUES (5, 'x', 'skips versions')",
	} {
		err := execControl(ctx, s, stmt)
		require.Error(t, err, stmt)
		require.ErrorContains(t, err, "pgshard: ")
	}
}

func TestListen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := controlDB(t)
	require.NoError(t, s.Init(ctx))
	ready := make(chan struct{})
	got := make(chan int64, 4)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Listen(lctx, func() { close(ready) }, func(v int64) { got <- v }) }()
	<-ready
	_, err := s.Apply(ctx, clusterMap(), topology.ApplyOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(1), <-got)
	stop()
	require.ErrorIs(t, <-done, context.Canceled)
}
