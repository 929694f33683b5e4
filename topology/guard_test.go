package topology_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/topology"
)

// A fence applied by a role that cannot create event triggers (the
// store's role here) still covers a table created after it, once a
// superuser has guarded the shard; a relaxed fence no longer does.
func TestGuardNewTables(t *testing.T) {
	ctx := context.Background()
	resetFences(t)
	p0 := cluster.Shards()[0].Primary
	for _, tbl := range []string{"public.made_after", "public.made_relaxed", "public.made_closed"} {
		require.NoError(t, p0.SuperExec(ctx, "DROP TABLE IF EXISTS "+tbl))
	}
	super, err := pgx.Connect(ctx, p0.SuperDSN())
	require.NoError(t, err)
	defer super.Close(ctx)
	require.NoError(t, topology.GuardNewTables(ctx, super, "pgshard"))
	require.NoError(t, topology.GuardNewTables(ctx, super, "pgshard"), "again: changes nothing")
	withShortLeases(t)

	s := controlDB(t)
	require.NoError(t, s.Init(ctx))
	_, err = s.Apply(ctx, clusterMap(), topology.ApplyOptions{})
	require.NoError(t, err)
	moved := clusterMap()
	moved.Shards[0].Range, moved.Shards[1].Range = "-40", "40-"
	_, err = s.Apply(ctx, moved, topology.ApplyOptions{Lease: shortLease})
	require.NoError(t, err)

	plain := connAt(t, p0, 0) // (the role pgshard would make its tables in the schema pgshard)
	_, err = plain.Exec(ctx, "CREATE TABLE public.made_after (id bigint PRIMARY KEY)")
	require.NoError(t, err)
	_, err = connAt(t, p0, 1).Exec(ctx, "INSERT INTO public.made_after VALUES (1)")
	fe, ok := topology.IsFenced(err)
	require.True(t, ok, "a table made after the fence refuses an old map: %v", err)
	require.Equal(t, int64(2), fe.Version)
	_, err = connAt(t, p0, 2).Exec(ctx, "INSERT INTO public.made_after VALUES (2)")
	require.NoError(t, err, "and takes a current one")

	relaxWhenDue(t, p0)
	_, err = plain.Exec(ctx, "CREATE TABLE public.made_relaxed (id bigint PRIMARY KEY)")
	require.NoError(t, err)
	require.Zero(t, fenceTriggers(t, p0), "nothing fenced once relaxed")

	// A shard fenced as a whole fences a new table against every router.
	moved.Shards[0].State = topology.StateFenced
	_, err = s.Apply(ctx, moved, topology.ApplyOptions{Lease: shortLease})
	require.NoError(t, err)
	_, err = plain.Exec(ctx, "CREATE TABLE public.made_closed (id bigint PRIMARY KEY)")
	require.NoError(t, err)
	fe, ok = topology.IsFenced(exec2(ctx, connAt(t, p0, 3), "INSERT INTO public.made_closed VALUES (1)"))
	require.True(t, ok)
	require.True(t, fe.Closed)
}

func exec2(ctx context.Context, c *pgx.Conn, sql string) error {
	_, err := c.Exec(ctx, sql)
	return err
}
