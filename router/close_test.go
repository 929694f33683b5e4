package router_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	if err != nil {
		t.Fatal(err)
	}
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
	if err := r.User(1).QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, r.User(1), "k", func(context.Context) (string, error) { return "v", nil }); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Close() // idempotent
	if err := goleak.Find(before); err != nil {
		t.Error(err)
	}
	if _, err := r.User(1).Exec(ctx, "SELECT 1"); !errors.Is(err, router.ErrClosed) {
		t.Errorf("Exec after Close: %v, want ErrClosed", err)
	}
	if err := r.User(1).QueryRow(ctx, "SELECT 1").Scan(&n); !errors.Is(err, router.ErrClosed) {
		t.Errorf("QueryRow after Close: %v, want ErrClosed", err)
	}
	if err := r.User(1).Tx(ctx, func(pgx.Tx) error { return nil }); !errors.Is(err, router.ErrClosed) {
		t.Errorf("Tx after Close: %v, want ErrClosed", err)
	}
}
