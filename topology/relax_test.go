package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/topology"
)

const shortLease = 100 * time.Millisecond

// withShortLeases gives each shard a fence that refuses nothing and names
// a short lease, so that a later fence may be relaxed soon after it is
// installed (with no fence, routers are assumed to hold DefaultLease).
func withShortLeases(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for i, sh := range cluster.Shards() {
		name := []string{"a", "b"}[i]
		require.NoError(t, topology.InstallFence(ctx, connAt(t, sh.Primary, 0), topology.FenceState{Shard: name, Lease: shortLease}, time.Second))
	}
}

func fenceTriggers(t *testing.T, n *pgcluster.Node) int {
	t.Helper()
	var count int
	require.NoError(t, connAt(t, n, 0).QueryRow(context.Background(),
		"SELECT count(*) FROM pg_trigger WHERE tgname = 'pgshard_fence'").Scan(&count))
	return count
}

// relaxWhenDue calls RelaxFence until it relaxes, failing the test past a
// generous bound.
func relaxWhenDue(t *testing.T, n *pgcluster.Node) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		done, err := topology.RelaxFence(context.Background(), connAt(t, n, 0), time.Second)
		require.NoError(t, err)
		if done {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the fence was never relaxed")
}

func TestRelaxFence(t *testing.T) {
	ctx := context.Background()
	resetFences(t)
	withShortLeases(t)
	p0 := cluster.Shards()[0].Primary
	s := controlDB(t)
	require.NoError(t, s.Init(ctx))
	_, err := s.Apply(ctx, clusterMap(), topology.ApplyOptions{})
	require.NoError(t, err)

	// A relax of the version-0 fences (they refuse nothing) is due at once.
	relaxWhenDue(t, p0)
	require.Zero(t, fenceTriggers(t, p0))

	moved := clusterMap()
	moved.Shards[0].Range, moved.Shards[1].Range = "-40", "40-"
	// A transaction open before the fence holds its relax off: it may
	// belong to a router that held its lease when it began.
	open, err := connAt(t, p0, 0).Begin(ctx)
	require.NoError(t, err)
	_, err = open.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	_, err = s.Apply(ctx, moved, topology.ApplyOptions{Lease: shortLease})
	require.NoError(t, err)
	st, ok, err := topology.ReadFence(ctx, connAt(t, p0, 0))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, shortLease, st.Lease)
	require.True(t, st.RelaxedAt.IsZero())
	require.WithinDuration(t, st.ChangedAt.Add(2*shortLease), st.RelaxAfter, 50*time.Millisecond, "twice the lease after the fence")
	require.Positive(t, fenceTriggers(t, p0))

	time.Sleep(time.Until(st.RelaxAfter) + 50*time.Millisecond) // the shard's clock is this machine's
	done, err := topology.RelaxFence(ctx, connAt(t, p0, 0), 200*time.Millisecond)
	require.ErrorContains(t, err, "transactions begun before it may go are still open")
	require.False(t, done)
	require.Positive(t, fenceTriggers(t, p0), "a failed relax leaves the fence")
	require.NoError(t, open.Rollback(ctx))

	relaxWhenDue(t, p0)
	require.Zero(t, fenceTriggers(t, p0))
	st, _, err = topology.ReadFence(ctx, connAt(t, p0, 0))
	require.NoError(t, err)
	require.False(t, st.RelaxedAt.IsZero())
	require.Equal(t, int64(2), st.Version, "the fence's version stays: routers still read it")
	require.NoError(t, exec(ctx, connAt(t, p0, 1), 1), "relaxed: the shard no longer refuses an old map (the routers' leases do)")
	done, err = topology.RelaxFence(ctx, connAt(t, p0, 0), time.Second)
	require.NoError(t, err)
	require.False(t, done, "already relaxed")

	// The next fence puts the triggers back at once.
	moved.Shards[0].Range, moved.Shards[1].Range = "-20", "20-"
	_, err = s.Apply(ctx, moved, topology.ApplyOptions{Lease: shortLease})
	require.NoError(t, err)
	_, ok = topology.IsFenced(exec(ctx, connAt(t, p0, 2), 2))
	require.True(t, ok, "a router on version 2 is refused by the fence of version 3")
}

// A shard fenced as a whole refuses every router until it is opened: its
// fence is never relaxed.
func TestRelaxFenceLeavesClosedShards(t *testing.T) {
	ctx := context.Background()
	resetFences(t)
	withShortLeases(t)
	p1 := cluster.Shards()[1].Primary
	require.NoError(t, topology.InstallFence(ctx, connAt(t, p1, 0), topology.FenceState{Shard: "b", Range: "80-", Version: 2, Closed: true, Lease: shortLease}, time.Second))
	time.Sleep(3 * shortLease)
	done, err := topology.RelaxFence(ctx, connAt(t, p1, 0), time.Second)
	require.NoError(t, err)
	require.False(t, done)
	_, ok := topology.IsFenced(exec(ctx, connAt(t, p1, 5), 1))
	require.True(t, ok)
}

// A router whose role is not the fence's owner still reads the fence, to
// renew its lease.
func TestFenceReadableByEveryRole(t *testing.T) {
	ctx := context.Background()
	resetFences(t)
	p0 := cluster.Shards()[0].Primary
	require.NoError(t, p0.SuperExec(ctx, "DROP ROLE IF EXISTS fence_reader"))
	require.NoError(t, p0.SuperExec(ctx, "CREATE ROLE fence_reader LOGIN PASSWORD 'reader'"))
	t.Cleanup(func() { _ = p0.SuperExec(context.Background(), "DROP ROLE IF EXISTS fence_reader") })
	require.NoError(t, topology.InstallFence(ctx, connAt(t, p0, 0), topology.FenceState{Shard: "a", Range: "-40", Version: 2}, time.Second))

	cfg, err := pgx.ParseConfig(p0.DSN())
	require.NoError(t, err)
	cfg.User, cfg.Password = "fence_reader", "reader"
	c, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer c.Close(ctx)
	st, ok, err := topology.ReadFence(ctx, c)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(2), st.Version)
}

// A relax that finds a table locked gives up at once, rather than hold up
// the queries that would queue behind it, and is done on a later try.
func TestRelaxFenceGivesWayToWriters(t *testing.T) {
	ctx := context.Background()
	resetFences(t)
	withShortLeases(t)
	p0 := cluster.Shards()[0].Primary
	require.NoError(t, topology.InstallFence(ctx, connAt(t, p0, 0), topology.FenceState{Shard: "a", Range: "-40", Version: 2, Lease: shortLease}, time.Second))
	st, _, err := topology.ReadFence(ctx, connAt(t, p0, 0))
	require.NoError(t, err)
	time.Sleep(time.Until(st.RelaxAfter) + 50*time.Millisecond)

	w, err := connAt(t, p0, 2).Begin(ctx) // begun after RelaxAfter: not waited for
	require.NoError(t, err)
	require.NoError(t, exec(ctx, w, 1))
	done, err := topology.RelaxFence(ctx, connAt(t, p0, 0), 10*time.Second)
	require.Error(t, err)
	require.Contains(t, err.Error(), "fenced_rows")
	require.False(t, done)
	st, _, err = topology.ReadFence(ctx, connAt(t, p0, 0))
	require.NoError(t, err)
	require.True(t, st.RelaxedAt.IsZero(), "not relaxed")
	require.Positive(t, fenceTriggers(t, p0))

	require.NoError(t, w.Commit(ctx))
	relaxWhenDue(t, p0)
	require.Zero(t, fenceTriggers(t, p0))
}
