package router_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// testLease is the lease the store's fences name in these tests: a fence
// may then be relaxed two leases after it is installed.
const testLease = time.Second

// shortLeases gives every shard a fence that refuses nothing and names
// testLease, relaxed at once (without a fence, a router's lease is
// topology.DefaultLease, which a first fence would have to outlive).
func shortLeases(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	for i, sh := range cluster.Shards() {
		c := primaryConn(t, sh.Primary, 0)
		require.NoError(t, topology.InstallFence(ctx, c, topology.FenceState{Shard: storeMap().Shards[i].Name, Lease: testLease}, 10*time.Second))
		done, err := topology.RelaxFence(ctx, c, 10*time.Second)
		require.NoError(t, err)
		require.True(t, done)
	}
}

// primaryConn connects to n as a router on map version v would (0: as a
// plain client).
func primaryConn(t testing.TB, n *pgcluster.Node, v int64) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(n.DSN())
	require.NoError(t, err)
	if v > 0 {
		cfg.RuntimeParams[topology.VersionParam] = strconv.FormatInt(v, 10)
	}
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// A router whose map updates are blocked never commits a write on a range
// that moved, also once the trigger that refused it is gone: its lease
// on the old shard has ended, and it cannot renew it on its old map.
func TestFollowLeaseOutlivesTheFence(t *testing.T) {
	ctx := context.Background()
	s, _ := controlStore(t)
	shortLeases(t)
	m := storeMap()
	apply(t, s, m, "four shards")
	blocked := openStore(t, s, func(c *router.Config) { c.FenceWait = 300 * time.Millisecond })
	openStore(t, s, nil)                                                                                                     // follows the store, and relaxes the fence when its time comes
	require.NoError(t, blocked.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS public.fence_rows (id bigint PRIMARY KEY, v text)")) // not in the schema pgshard, which the role pgshard would pick
	require.NoError(t, blocked.ExecAll(ctx, "TRUNCATE fence_rows"))
	const ins = "INSERT INTO fence_rows VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = $2"

	id := userIn(t, shard.Range{Start: 0x20 << 56, End: 0x40 << 56})
	early := blocked.User(id)
	_, err := early.Exec(ctx, ins, id, "before")
	require.NoError(t, err)

	router.HoldMapUpdates(blocked, true)
	m.Shards[0].Range, m.Shards[1].Range = "-20", "20-80"
	_, err = s.Apply(ctx, m, topology.ApplyOptions{Reason: "move 20-40 from a to b", Lookup: lookupPW, Lease: testLease})
	require.NoError(t, err)
	_, err = early.Exec(ctx, ins, id, "fenced")
	require.ErrorIs(t, err, topology.ErrFenced)

	a := cluster.Shards()[0].Primary
	onA := primaryConn(t, a, 0)

	// A table made after the fence has no trigger (no superuser guards
	// the shard: see topology.GuardNewTables); one lease after the fence
	// the blocked router, which cannot renew its lease, stops writing to
	// it too.
	_, err = onA.Exec(ctx, "CREATE TABLE IF NOT EXISTS public.fence_late (id bigint PRIMARY KEY); TRUNCATE public.fence_late")
	require.NoError(t, err)
	time.Sleep(testLease)
	_, err = early.Exec(ctx, "INSERT INTO public.fence_late VALUES ($1)", id)
	require.ErrorIs(t, err, topology.ErrFenced, "a table made after the fence")
	var late int
	require.NoError(t, onA.QueryRow(ctx, "SELECT count(*) FROM public.fence_late").Scan(&late))
	require.Zero(t, late)
	eventually(t, 60*time.Second, "the fence of a is relaxed", func() bool {
		st, _, err := topology.ReadFence(ctx, onA)
		var triggers int
		require.NoError(t, onA.QueryRow(ctx, "SELECT count(*) FROM pg_trigger WHERE tgname = 'pgshard_fence'").Scan(&triggers))
		return err == nil && !st.RelaxedAt.IsZero() && triggers == 0
	})
	_, err = primaryConn(t, a, 1).Exec(ctx, "UPDATE fence_rows SET v = v WHERE id = $1", id)
	require.NoError(t, err, "relaxed: a no longer refuses an old map itself")

	writes := map[string]func() error{
		"Exec": func() error { _, err := early.Exec(ctx, ins, id, "after"); return err },
		"Tx": func() error {
			return early.Tx(ctx, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, ins, id, "after"); return err })
		},
		"BeginTx": func() error {
			tx, err := early.BeginTx(ctx, pgx.TxOptions{})
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, ins, id, "after"); err != nil {
				return err
			}
			return tx.Commit(ctx)
		},
		"SendBatch": func() error {
			b := &pgx.Batch{}
			b.Queue(ins, id, "after")
			return early.SendBatch(ctx, b).Close()
		},
		"CopyFrom": func() error {
			_, err := early.CopyFrom(ctx, pgx.Identifier{"fence_rows"}, []string{"id", "v"}, pgx.CopyFromRows([][]any{{id + 1e9, "after"}}))
			return err
		},
		"ExecAll": func() error { return blocked.ExecAll(ctx, "UPDATE fence_rows SET v = 'after' WHERE id = $1", id) },
	}
	for name, write := range writes {
		require.ErrorIs(t, write(), topology.ErrFenced, "%s: the blocked router holds no lease on a", name)
	}
	var v string
	require.NoError(t, onA.QueryRow(ctx, "SELECT v FROM fence_rows WHERE id = $1", id).Scan(&v))
	require.Equal(t, "before", v, "nothing committed on a after the move")

	router.HoldMapUpdates(blocked, false)
	eventually(t, 30*time.Second, "the unblocked router serves version 2", func() bool { return blocked.Stats().Map.Version == 2 })
	_, err = early.Exec(ctx, ins, id, "moved")
	require.NoError(t, err, "renewed on the new map, it writes to the new owner")
	require.True(t, rowOn(t, cluster.Shards()[1].Primary, id))
}
