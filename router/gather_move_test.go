package router_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/topology"
)

// A Gather planned on a map that a newer one replaces, dropping one of its
// shards (its range given to another), runs again on the new map instead
// of failing with "shard d is no longer in the map" (chaos scenario 15: a
// /posts/recent in flight at a reshard's switch).
func TestGatherPlansAgainWhenAShardLeavesTheMap(t *testing.T) {
	ctx := context.Background()
	s, _ := controlStore(t)
	m := storeMap()
	apply(t, s, m, "four shards")
	r := openStore(t, s, func(c *router.Config) { c.FenceWait = 5 * time.Second })
	require.NoError(t, r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS gather_move (shard text PRIMARY KEY)"))
	require.NoError(t, r.ExecAll(ctx, "TRUNCATE gather_move"))
	for _, t0 := range r.Shards() {
		_, err := t0.Exec(ctx, "INSERT INTO gather_move VALUES ($1)", t0.Shard())
		require.NoError(t, err)
	}
	old, ok := r.Shard("d")
	require.True(t, ok)

	var hookErr error
	moved := false
	router.OnGatherPlanned(func() {
		if moved {
			return
		}
		moved = true
		// c takes d's range; d leaves the map. The router hears of d's
		// fence before it has the new map, as a router can.
		router.HoldMapUpdates(r, true)
		m.Shards[2].Range = "80-"
		m.Shards = m.Shards[:3]
		if _, hookErr = s.Apply(ctx, m, applyOpts("d's range to c")); hookErr != nil {
			return
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			rows, err := old.Query(ctx, "SELECT 1")
			if err == nil {
				rows.Close()
			}
			if errors.Is(err, topology.ErrFenced) {
				break // it read d's fence
			}
			if time.Now().After(deadline) {
				hookErr = errors.New("the router never read d's fence")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		router.HoldMapUpdates(r, false)
	})
	t.Cleanup(func() { router.OnGatherPlanned(nil); router.HoldMapUpdates(r, false) })

	got, err := router.Gather(ctx, r, "SELECT shard FROM gather_move", nil, pgx.RowTo[string], router.GatherOptions[string]{})
	require.NoError(t, hookErr)
	require.True(t, moved, "the map changed between planning and running")
	require.NoError(t, err, "a Gather across the map change")
	assert.ElementsMatch(t, []string{"a", "b", "c"}, got, "the rows of the new map's shards")
}
