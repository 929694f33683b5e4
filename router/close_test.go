package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/router"
)

// No goroutine of the router (checkers, listeners, pools, caches) outlives
// Close, and calls after Close fail with ErrClosed.
func TestCloseLeavesNothingRunning(t *testing.T) {
	ctx := context.Background()
	before := goleak.IgnoreCurrent()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 100, TTL: time.Minute}
	r, err := router.Open(ctx, cfg)
	require.NoError(t, err)
	c := router.NewCache[string](r, "names", cache.Options{})
	eventually(t, 5*time.Second, "listeners up", func() bool {
		for _, s := range r.Stats().Shards {
			if !s.Listening {
				return false
			}
		}
		return true
	})
	var n int
	require.NoError(t, r.User(1).QueryRow(ctx, "SELECT 1").Scan(&n))
	_, err = c.Get(ctx, r.User(1), "k", func(context.Context) (string, error) { return "v", nil })
	require.NoError(t, err)
	r.Close()
	r.Close() // idempotent
	assert.NoError(t, goleak.Find(before))
	_, err = r.User(1).Exec(ctx, "SELECT 1")
	assert.ErrorIs(t, err, router.ErrClosed, "Exec after Close")
	assert.ErrorIs(t, r.User(1).QueryRow(ctx, "SELECT 1").Scan(&n), router.ErrClosed, "QueryRow after Close")
	assert.ErrorIs(t, r.User(1).Tx(ctx, func(pgx.Tx) error { return nil }), router.ErrClosed, "Tx after Close")
}
