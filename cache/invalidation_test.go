package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/cache"
)

// blockedLoad is a loader that tells when it has started and returns v only when released.
type blockedLoad struct {
	started, release chan struct{}
	v                int
	err              error
}

func newBlockedLoad(v int, err error) *blockedLoad {
	return &blockedLoad{started: make(chan struct{}), release: make(chan struct{}), v: v, err: err}
}

func (b *blockedLoad) load(context.Context) (int, error) {
	close(b.started)
	<-b.release
	return b.v, b.err
}

type lookupResult struct {
	v   int
	hit bool
	err error
}

// lookupAsync starts a Lookup and returns where its result will arrive.
func lookupAsync(c *strCache, key string, load func(context.Context) (int, error)) <-chan lookupResult {
	res := make(chan lookupResult, 1)
	go func() {
		v, hit, err := c.Lookup(context.Background(), key, load)
		res <- lookupResult{v, hit, err}
	}()
	return res
}

// TestStaleLoadNeverWins holds a load of "k" until the test has invalidated "k", then checks
// that the load's stale result reached its waiter but not the cache.
func TestStaleLoadNeverWins(t *testing.T) {
	tests := []struct {
		name       string
		invalidate func(*strCache)
		relookup   bool // look "k" up again between the invalidation and the stale load's end
		wantV      int  // Get("k") at the end
		wantOK     bool
	}{
		{name: "Delete", invalidate: del("k")},
		{name: "Purge", invalidate: purge()},
		{name: "Set", invalidate: set("k", 3), wantV: 3, wantOK: true},
		{name: "Delete then lookup", invalidate: del("k"), relookup: true, wantV: 2, wantOK: true},
		{name: "Purge then lookup", invalidate: purge(), relookup: true, wantV: 2, wantOK: true},
		{name: "Set then lookup", invalidate: set("k", 3), relookup: true, wantV: 3, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache.New[string, int](cache.Options{Shards: 1})
			defer c.Close()
			stale := newBlockedLoad(1, nil)
			res := lookupAsync(c, "k", stale.load)
			<-stale.started

			tt.invalidate(c)
			if tt.relookup {
				var calls atomic.Int64
				v, _, err := c.Lookup(context.Background(), "k", value(2, &calls))
				assert.NoError(t, err, "Lookup after invalidation")
				assert.Equal(t, tt.wantV, v, "Lookup after invalidation (it must not join the stale load)")
			}
			close(stale.release)

			assert.Equal(t, lookupResult{v: 1}, <-res, "the stale load's waiter")
			v, ok := c.Get("k")
			assert.Equal(t, tt.wantV, v, "Get after the stale load")
			assert.Equal(t, tt.wantOK, ok, "Get after the stale load hit")
		})
	}
}

func TestInvalidatingAnotherKeyKeepsTheLoad(t *testing.T) {
	c := cache.New[string, int](cache.Options{Shards: 1}) // one shard: "other" shares every stripe with "k"
	defer c.Close()
	l := newBlockedLoad(1, nil)
	res := lookupAsync(c, "k", l.load)
	<-l.started
	c.Delete("other")
	c.Set("other", 5)
	close(l.release)
	<-res
	v, ok := c.Get("k")
	assert.True(t, ok, "Get missed")
	assert.Equal(t, 1, v, "Get")
}

func TestPurgeDuringLoads(t *testing.T) {
	const n = 50
	c := cache.New[string, int](cache.Options{})
	defer c.Close()
	release := make(chan struct{})
	var started sync.WaitGroup
	results := make([]<-chan lookupResult, n)
	for i := range n {
		started.Add(1)
		results[i] = lookupAsync(c, fmt.Sprint(i), func(context.Context) (int, error) {
			started.Done()
			<-release
			return i, nil
		})
	}
	started.Wait()
	c.Purge()
	close(release)
	for i, res := range results {
		r := <-res
		assert.NoError(t, r.err, "waiter of key %d", i)
		assert.Equal(t, i, r.v, "waiter of key %d", i)
	}
	assert.Equal(t, 0, c.Len(), "Len() after loads that began before Purge")
	var calls atomic.Int64
	v, hit, _ := c.Lookup(context.Background(), "0", value(7, &calls))
	assert.Equal(t, 7, v, "Lookup after Purge")
	assert.False(t, hit, "Lookup after Purge hit; want a fresh load")
}

func TestStaleWhileRevalidate(t *testing.T) {
	errDB := errors.New("db down")
	tests := []struct {
		name       string
		refreshV   int
		refreshErr error
		invalidate bool // Delete the key while the refresh runs
		wantV      int
		wantOK     bool
	}{
		{name: "refresh replaces the value", refreshV: 2, wantV: 2, wantOK: true},
		{name: "failed refresh keeps the stale value", refreshErr: errDB, wantV: 1, wantOK: true},
		{name: "not found drops the value", refreshErr: cache.ErrNotFound},
		{name: "delete during refresh wins", refreshV: 2, invalidate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := cache.New[string, int](cache.Options{TTL: time.Minute, RefreshAfter: 10 * time.Second, Now: clock.Now})
			defer c.Close()
			ctx := context.Background()
			var calls atomic.Int64
			c.GetOrLoad(ctx, "k", value(1, &calls))

			clock.Advance(9 * time.Second)
			v, hit, _ := c.Lookup(ctx, "k", value(1, &calls))
			require.Equal(t, 1, v, "Lookup before RefreshAfter")
			require.True(t, hit, "Lookup before RefreshAfter missed")
			require.Equal(t, int64(1), calls.Load(), "loads before RefreshAfter")

			clock.Advance(2 * time.Second)
			refresh := newBlockedLoad(tt.refreshV, tt.refreshErr)
			for range 3 { // the first starts the refresh; none waits for it or starts another
				v, hit, err := c.Lookup(ctx, "k", refresh.load)
				require.NoError(t, err, "Lookup past RefreshAfter")
				require.Equal(t, 1, v, "Lookup past RefreshAfter: want the stale value")
				require.True(t, hit, "Lookup past RefreshAfter missed")
			}
			<-refresh.started
			if tt.invalidate {
				c.Delete("k")
			}
			close(refresh.release)
			eventually(t, "the refresh to finish", func() bool { return c.Stats().Loads == 2 })
			v, ok := c.Get("k")
			assert.Equal(t, tt.wantV, v, "Get after the refresh")
			assert.Equal(t, tt.wantOK, ok, "Get after the refresh hit")
		})
	}
}
