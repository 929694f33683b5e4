package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
				if v != tt.wantV || err != nil {
					t.Errorf("Lookup after invalidation = %d, %v; want %d, nil (it must not join the stale load)", v, err, tt.wantV)
				}
			}
			close(stale.release)

			if r := <-res; r.v != 1 || r.hit || r.err != nil {
				t.Errorf("the stale load's waiter got %+v; want {v:1 hit:false err:<nil>}", r)
			}
			if v, ok := c.Get("k"); v != tt.wantV || ok != tt.wantOK {
				t.Errorf("Get after the stale load = %d, %t; want %d, %t", v, ok, tt.wantV, tt.wantOK)
			}
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
	if v, ok := c.Get("k"); v != 1 || !ok {
		t.Errorf("Get = %d, %t; want 1, true", v, ok)
	}
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
		if r := <-res; r.v != i || r.err != nil {
			t.Errorf("waiter of key %d got %+v; want its value", i, r)
		}
	}
	if got := c.Len(); got != 0 {
		t.Errorf("Len() after loads that began before Purge = %d; want 0", got)
	}
	var calls atomic.Int64
	if v, hit, _ := c.Lookup(context.Background(), "0", value(7, &calls)); v != 7 || hit {
		t.Errorf("Lookup after Purge = %d, %t; want a fresh load of 7", v, hit)
	}
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
			if v, hit, _ := c.Lookup(ctx, "k", value(1, &calls)); v != 1 || !hit || calls.Load() != 1 {
				t.Fatalf("Lookup before RefreshAfter = %d, %t after %d loads; want 1, true after 1", v, hit, calls.Load())
			}

			clock.Advance(2 * time.Second)
			refresh := newBlockedLoad(tt.refreshV, tt.refreshErr)
			for range 3 { // the first starts the refresh; none waits for it or starts another
				if v, hit, err := c.Lookup(ctx, "k", refresh.load); v != 1 || !hit || err != nil {
					t.Fatalf("Lookup past RefreshAfter = %d, %t, %v; want the stale 1, true, nil", v, hit, err)
				}
			}
			<-refresh.started
			if tt.invalidate {
				c.Delete("k")
			}
			close(refresh.release)
			eventually(t, "the refresh to finish", func() bool { return c.Stats().Loads == 2 })
			if v, ok := c.Get("k"); v != tt.wantV || ok != tt.wantOK {
				t.Errorf("Get after the refresh = %d, %t; want %d, %t", v, ok, tt.wantV, tt.wantOK)
			}
		})
	}
}
