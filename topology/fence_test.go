package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/topology"
)

// These tests share the cluster's shards, whose fences they reset: they
// do not run in parallel.

type execer interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}

func exec(ctx context.Context, c execer, id int64) error {
	_, err := c.Exec(ctx, "INSERT INTO fenced_rows VALUES ($1)", id)
	return err
}

func TestFenceRefusesOldMaps(t *testing.T) {
	ctx := context.Background()
	resetFences(t)
	s := controlDB(t)
	require.NoError(t, s.Init(ctx))
	_, err := s.Apply(ctx, clusterMap(), topology.ApplyOptions{})
	require.NoError(t, err)
	p0 := cluster.Shards()[0].Primary
	old := connAt(t, p0, 1)
	require.NoError(t, exec(ctx, old, 1), "no fence before a range moves")

	// Move 40-80 from a to b: a is fenced at version 2.
	m := clusterMap()
	m.Shards[0].Range, m.Shards[1].Range = "-40", "40-"
	plan, err := s.Apply(ctx, m, topology.ApplyOptions{Reason: "move 40-80"})
	require.NoError(t, err)
	require.Equal(t, []topology.FenceState{{Shard: "a", Range: "-40", Version: 2, Primary: m.Shards[0].Primary}}, plan.Fences)

	err = exec(ctx, old, 2)
	fe, ok := topology.IsFenced(err)
	require.True(t, ok, "a write from a version-1 router is refused: %v", err)
	require.Equal(t, int64(2), fe.Version)
	require.False(t, fe.Closed)
	require.ErrorIs(t, fe, topology.ErrFenced)

	require.NoError(t, exec(ctx, connAt(t, p0, 2), 3), "a router on version 2 writes")
	require.NoError(t, exec(ctx, connAt(t, p0, 0), 4), "a plain client is not fenced")
	require.NoError(t, exec(ctx, connAt(t, cluster.Shards()[1].Primary, 1), 5), "b lost nothing: no fence")

	st, ok, err := topology.ReadFence(ctx, connAt(t, p0, 0))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "a", st.Shard)
	require.Equal(t, "-40", st.Range)
	require.Equal(t, int64(2), st.Version)

	// Fence b as a whole (a switchover), then open it again.
	m.Shards[1].State = topology.StateFenced
	_, err = s.Apply(ctx, m, topology.ApplyOptions{})
	require.NoError(t, err)
	fe, ok = topology.IsFenced(exec(ctx, connAt(t, cluster.Shards()[1].Primary, 3), 6))
	require.True(t, ok)
	require.True(t, fe.Closed)
	m.Shards[1].State = topology.StateServing
	_, err = s.Apply(ctx, m, topology.ApplyOptions{})
	require.NoError(t, err)
	require.NoError(t, exec(ctx, connAt(t, cluster.Shards()[1].Primary, 4), 7))
	_, ok = topology.IsFenced(exec(ctx, connAt(t, cluster.Shards()[1].Primary, 3), 8))
	require.True(t, ok, "a router that still sees b fenced does not write")
}

func TestFenceWaitsForWritesInFlight(t *testing.T) {
	ctx := context.Background()
	resetFences(t)
	s := controlDB(t)
	require.NoError(t, s.Init(ctx))
	_, err := s.Apply(ctx, clusterMap(), topology.ApplyOptions{})
	require.NoError(t, err)
	p0 := cluster.Shards()[0].Primary
	moved := clusterMap()
	moved.Shards[0].Range, moved.Shards[1].Range = "-40", "40-"

	// A write in flight holds the fence off; past its bound the fence
	// gives up and nothing changes.
	inflight, err := connAt(t, p0, 1).Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, exec(ctx, inflight, 1))
	_, err = s.Apply(ctx, moved, topology.ApplyOptions{LockTimeout: 200 * time.Millisecond})
	require.ErrorContains(t, err, "fence shard a: wait for the writes in flight")
	cur, err := s.Current(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), cur.Version, "a failed fence stores nothing")

	// Within its bound, the fence waits for the write to commit.
	applied := make(chan error, 1)
	go func() {
		_, err := s.Apply(ctx, moved, topology.ApplyOptions{LockTimeout: time.Minute})
		applied <- err
	}()
	// A transaction that began before the fence but writes after it
	// is refused.
	late, err := connAt(t, p0, 1).Begin(ctx)
	require.NoError(t, err)
	_, err = late.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	waitLocked(t, p0Conn(t), "fenced_rows")
	require.NoError(t, inflight.Commit(ctx), "the write in flight commits before the fence")
	require.NoError(t, <-applied)
	_, ok := topology.IsFenced(exec(ctx, late, 2))
	require.True(t, ok, "a write after the fence is refused, though its transaction began before")
	_ = late.Rollback(ctx)

	var n int
	require.NoError(t, connAt(t, p0, 0).QueryRow(ctx, "SELECT count(*) FROM fenced_rows").Scan(&n))
	require.Equal(t, 1, n)
}

func p0Conn(t *testing.T) *pgx.Conn { return connAt(t, cluster.Shards()[0].Primary, 0) }

// waitLocked waits until a session waits for a lock on table.
func waitLocked(t *testing.T, c *pgx.Conn, table string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var waiting bool
		require.NoError(t, c.QueryRow(context.Background(),
			"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND relation = $1::regclass)", table).Scan(&waiting))
		if waiting {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no session waits for a lock on %s", table)
}

// A writer that holds one table and then writes another, while the fence
// goes through the tables: with every table locked in one transaction the
// two would deadlock and PostgreSQL would abort one of them. The fence
// takes one table at a time, so the writer is refused by the fence (it
// writes after it) and the fence completes.
func TestFenceDoesNotDeadlockWithWriters(t *testing.T) {
	ctx := context.Background()
	resetFences(t)
	p0 := cluster.Shards()[0].Primary
	require.NoError(t, p0.SuperExec(ctx, "CREATE TABLE IF NOT EXISTS fenced_later (id bigint PRIMARY KEY); ALTER TABLE fenced_later OWNER TO pgshard; TRUNCATE fenced_later"))
	s := controlDB(t)
	require.NoError(t, s.Init(ctx))
	_, err := s.Apply(ctx, clusterMap(), topology.ApplyOptions{})
	require.NoError(t, err)

	w, err := connAt(t, p0, 1).Begin(ctx)
	require.NoError(t, err)
	defer w.Rollback(ctx)
	_, err = w.Exec(ctx, "INSERT INTO fenced_later VALUES (1)") // the table the fence takes last
	require.NoError(t, err)

	moved := clusterMap()
	moved.Shards[0].Range, moved.Shards[1].Range = "-40", "40-"
	applied := make(chan error, 1)
	go func() {
		_, err := s.Apply(ctx, moved, topology.ApplyOptions{LockTimeout: time.Minute})
		applied <- err
	}()
	waitLocked(t, p0Conn(t), "fenced_later")
	err = exec(ctx, w, 2) // fenced_rows, which the fence has done
	fe, ok := topology.IsFenced(err)
	require.True(t, ok, "refused by the fence, not a deadlock: %v", err)
	require.Equal(t, int64(2), fe.Version)
	require.NoError(t, w.Rollback(ctx))
	require.NoError(t, <-applied)
}
