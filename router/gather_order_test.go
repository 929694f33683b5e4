package router_test

import (
	"cmp"
	"context"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
)

func seedPosts(t *testing.T, r *router.Router, users int) {
	t.Helper()
	ctx := context.Background()
	schema(t, r)
	require.NoError(t, r.ExecAll(ctx, "TRUNCATE posts"))
	for u := int64(1); u <= int64(users); u++ {
		_, err := r.User(u).Exec(ctx, "INSERT INTO posts SELECT $1::bigint, $1::bigint * 1000 + g, 'p' FROM generate_series(1, 5) g", u)
		require.NoError(t, err)
	}
}

// Gather checks each shard's order as rows arrive and sorts nothing that
// the SQL already ordered: Compare is called once per row of each shard,
// plus the merge's heap work, and not n log n times per shard.
func TestGatherDoesNotResortOrderedRows(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	seedPosts(t, r, 200)
	scan := pgx.RowToStructByPos[post]
	var calls atomic.Int64
	newest := func(a, b post) int { calls.Add(1); return cmp.Compare(b.ID, a.ID) }
	opts := router.GatherOptions[post]{Compare: newest, Primary: true}

	got, err := router.Gather(ctx, r, "SELECT user_id, id FROM posts ORDER BY id DESC", nil, scan, opts)
	require.NoError(t, err)
	require.Len(t, got, 1000)
	assert.True(t, slices.IsSortedFunc(got, func(a, b post) int { return cmp.Compare(b.ID, a.ID) }), "merged in order")
	k := len(r.Map().Shards())
	// One comparison per row after each shard's first, and for the merge at
	// most 2 log2(k) per row and 2k to build the heap.
	bound := int64(len(got) - k + 2*bits.Len(uint(k))*len(got) + 2*k)
	assert.LessOrEqual(t, calls.Load(), bound, "ordered rows: %d comparisons, want at most %d", calls.Load(), bound)

	// Rows the SQL did not order are sorted: the answer is the same.
	calls.Store(0)
	unordered, err := router.Gather(ctx, r, "SELECT user_id, id FROM posts ORDER BY random()", nil, scan, opts)
	require.NoError(t, err)
	assert.Equal(t, got, unordered)
	assert.Greater(t, calls.Load(), bound, "unordered rows were sorted")

	// The top 7 by Compare, with and without the SQL's help.
	top, err := router.Gather(ctx, r, "SELECT user_id, id FROM posts ORDER BY random()", nil, scan,
		router.GatherOptions[post]{Compare: newest, Limit: 7, Primary: true})
	require.NoError(t, err)
	assert.Equal(t, got[:7], top)
}

// With a Limit and no order, Gather stops reading once it has the rows.
func TestGatherLimitWithoutOrderStopsReading(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	var scanned atomic.Int64
	scan := func(row pgx.CollectableRow) (int64, error) {
		scanned.Add(1)
		return pgx.RowTo[int64](row)
	}
	const limit = 10
	got, err := router.Gather(ctx, r, "SELECT g FROM generate_series(1, 200000) g", nil, scan,
		router.GatherOptions[int64]{Limit: limit, Primary: true})
	require.NoError(t, err)
	assert.Len(t, got, limit)
	shards := int64(len(r.Map().Shards()))
	assert.LessOrEqual(t, scanned.Load(), limit+shards, "rows scanned")
}

// Group gives each shard its users; GatherGroups reads them all in one
// call, one query per shard.
func TestGroupAndGatherGroups(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	schema(t, r)
	var ids []int64
	for id := int64(9000); id < 9200; id++ {
		_, err := r.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $2", id, fmt.Sprint("u", id))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	groups := r.Group(append(ids, 424242424242)) // one that does not exist
	seen := map[int64]bool{}
	for _, g := range groups {
		require.NotEmpty(t, g.IDs)
		for _, id := range g.IDs {
			assert.True(t, g.Target.Range().Contains(shard.HashInt64(id)), "user %d grouped under %s", id, g.Target.Shard())
			assert.False(t, seen[id], "user %d in two groups", id)
			seen[id] = true
		}
	}
	assert.Len(t, seen, len(ids)+1)

	byID := func(a, b user) int { return cmp.Compare(a.ID, b.ID) }
	got, err := router.GatherGroups(ctx, r, groups, "SELECT id, name FROM users WHERE id = ANY($1) ORDER BY id",
		pgx.RowToStructByPos[user], router.GatherOptions[user]{Compare: byID, Primary: true})
	require.NoError(t, err)
	require.Len(t, got, len(ids))
	for i, u := range got {
		assert.Equal(t, ids[i], u.ID)
		assert.Equal(t, fmt.Sprint("u", ids[i]), u.Name)
	}
	assert.Empty(t, r.Group(nil))
}
