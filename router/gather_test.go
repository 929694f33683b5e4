package router_test

import (
	"cmp"
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/router"
)

type post struct {
	UserID int64
	ID     int64
}

func TestGatherTopN(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	schema(t, r)
	require.NoError(t, r.ExecAll(ctx, "TRUNCATE posts"))
	for u := int64(1); u <= 200; u++ {
		_, err := r.User(u).Exec(ctx, "INSERT INTO posts SELECT $1::bigint, $1::bigint * 1000 + g, 'p' FROM generate_series(1, 5) g", u)
		require.NoError(t, err)
	}
	scan := pgx.RowToStructByPos[post]
	newest := func(a, b post) int { return cmp.Compare(b.ID, a.ID) }
	got, err := router.Gather(ctx, r, "SELECT user_id, id FROM posts ORDER BY id DESC LIMIT 50", nil, scan,
		router.GatherOptions[post]{Compare: newest, Limit: 50, Primary: true})
	require.NoError(t, err)
	// The same question asked of the union of every shard's rows.
	all, err := router.Gather(ctx, r, "SELECT user_id, id FROM posts", nil, scan, router.GatherOptions[post]{Primary: true})
	require.NoError(t, err)
	require.Len(t, all, 1000, "union of the shards' posts")
	slices.SortFunc(all, func(a, b post) int { return int(b.ID - a.ID) })
	assert.Equal(t, all[:50], got, "Gather top 50")

	// One shard's primary stopped: the call fails naming it, and Partial
	// returns the others' rows naming it.
	victim := cluster.Shards()[2]
	name := r.Map().Shards()[2]
	require.NoError(t, victim.Primary.Stop(ctx))
	defer victim.Primary.Start(context.Background())
	_, err = router.Gather(ctx, r, "SELECT user_id, id FROM posts", nil, scan, router.GatherOptions[post]{Primary: true})
	var me *router.MultiError
	require.ErrorAs(t, err, &me, "Gather with shard %s down", name)
	require.Equal(t, []string{name}, me.Shards(), "Gather with shard %s down: the MultiError names only it", name)
	part, err := router.Gather(ctx, r, "SELECT user_id, id FROM posts", nil, scan, router.GatherOptions[post]{Primary: true, Partial: true})
	var pe *router.PartialError
	require.ErrorAs(t, err, &pe, "partial Gather")
	require.Equal(t, []string{name}, pe.Shards(), "partial Gather: the PartialError names only the shard down")
	require.ErrorContains(t, err, name, "partial Gather")
	assert.NotEmpty(t, part, "partial Gather: want the other shards' rows")
	assert.Less(t, len(part), 1000, "partial Gather: want only the other shards' rows")
	err = r.ExecAll(ctx, "SELECT 1")
	require.ErrorAs(t, err, &me, "ExecAll with shard %s down", name)
	require.Equal(t, []string{name}, me.Shards(), "ExecAll with shard %s down: the MultiError names only it", name)
}
