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

// value returns a loader that counts its calls and returns v.
func value(v int, calls *atomic.Int64) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		calls.Add(1)
		return v, nil
	}
}

func TestLookup(t *testing.T) {
	c := cache.New[string, int](cache.Options{})
	defer c.Close()
	var calls atomic.Int64
	ctx := context.Background()
	for i, want := range []bool{false, true, true} {
		v, hit, err := c.Lookup(ctx, "a", value(7, &calls))
		assert.NoError(t, err, "Lookup #%d", i)
		assert.Equal(t, 7, v, "Lookup #%d", i)
		assert.Equal(t, want, hit, "Lookup #%d hit", i)
	}
	assert.Equal(t, int64(1), calls.Load(), "loader runs")
	st := c.Stats()
	assert.Equal(t, uint64(2), st.Hits, "Stats().Hits in %+v", st)
	assert.Equal(t, uint64(1), st.Misses, "Stats().Misses in %+v", st)
	assert.Equal(t, uint64(1), st.Loads, "Stats().Loads in %+v", st)
}

func TestSingleFlight(t *testing.T) {
	const callers = 1000
	c := cache.New[string, int](cache.Options{})
	defer c.Close()
	var calls atomic.Int64
	release := make(chan struct{})
	load := func(context.Context) (int, error) {
		calls.Add(1)
		<-release
		return 42, nil
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			<-start
			if v, err := c.GetOrLoad(context.Background(), "cold", load); v != 42 || err != nil {
				errs <- fmt.Errorf("GetOrLoad = %d, %v; want 42, nil", v, err)
			}
		})
	}
	close(start)
	// Every caller counts its miss before it waits: hold the load until all have joined it.
	eventually(t, "every caller to miss", func() bool { return c.Stats().Misses == callers })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, int64(1), calls.Load(), "loads run by %d callers", callers)
}

func TestLoadErrors(t *testing.T) {
	errDB := errors.New("db down")
	notFound := fmt.Errorf("user 5: %w", cache.ErrNotFound)
	tests := []struct {
		name        string
		negativeTTL time.Duration
		loadErr     error
		advance     time.Duration
		wantLoads   int64 // after two lookups with the clock advanced between them
		wantHit     bool  // of the second lookup
		wantErrs    uint64
	}{
		{"not found, not remembered", 0, notFound, 0, 2, false, 0},
		{"not found, remembered", time.Minute, notFound, 0, 1, true, 0},
		{"not found, remembered until NegativeTTL", time.Minute, notFound, time.Minute, 2, false, 0},
		{"bare ErrNotFound", time.Minute, cache.ErrNotFound, 0, 1, true, 0},
		{"other errors are not cached", time.Minute, errDB, 0, 2, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := cache.New[string, int](cache.Options{NegativeTTL: tt.negativeTTL, Now: clock.Now})
			defer c.Close()
			var calls atomic.Int64
			load := func(context.Context) (int, error) { calls.Add(1); return 9, tt.loadErr }
			ctx := context.Background()
			v, hit, err := c.Lookup(ctx, "k", load)
			require.Equal(t, tt.loadErr, err, "first Lookup's error")
			require.Equal(t, 0, v, "first Lookup")
			require.False(t, hit, "first Lookup hit")
			clock.Advance(tt.advance)
			v, hit, err = c.Lookup(ctx, "k", load)
			assert.Equal(t, tt.loadErr, err, "second Lookup's error")
			assert.Equal(t, 0, v, "second Lookup")
			assert.Equal(t, tt.wantHit, hit, "second Lookup hit")
			assert.Equal(t, tt.wantLoads, calls.Load(), "loader runs")
			_, ok := c.Get("k")
			assert.False(t, ok, "Get hit a key whose load failed")
			assert.Equal(t, tt.wantErrs, c.Stats().LoadErrors, "Stats().LoadErrors")
		})
	}
}

func TestCallerLeavesLoadGoesOn(t *testing.T) {
	c := cache.New[string, int](cache.Options{})
	defer c.Close()
	started, release := make(chan struct{}), make(chan struct{})
	loadErr := make(chan error, 1)
	load := func(ctx context.Context) (int, error) {
		close(started)
		<-release
		loadErr <- ctx.Err()
		return 1, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.GetOrLoad(ctx, "k", load); first <- err }()
	<-started
	second := make(chan int, 1)
	go func() { v, _ := c.GetOrLoad(context.Background(), "k", load); second <- v }()
	eventually(t, "the second caller to join", func() bool { return c.Stats().Misses == 2 })

	cancel()
	assert.ErrorIs(t, <-first, context.Canceled, "cancelled caller")
	close(release)
	assert.NoError(t, <-loadErr, "load's context ended with the caller's")
	assert.Equal(t, 1, <-second, "waiting caller")
	v, ok := c.Get("k")
	assert.True(t, ok, "Get missed the loaded key")
	assert.Equal(t, 1, v, "Get")
}

func TestCancelledCallerStartsNoLoad(t *testing.T) {
	c := cache.New[string, int](cache.Options{})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var calls atomic.Int64
	_, err := c.GetOrLoad(ctx, "k", value(1, &calls))
	assert.ErrorIs(t, err, context.Canceled, "GetOrLoad")
	assert.Zero(t, calls.Load(), "a caller whose context had ended started a load")
}

func TestLoadTimeout(t *testing.T) {
	c := cache.New[string, int](cache.Options{LoadTimeout: 5 * time.Millisecond})
	defer c.Close()
	load := func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }
	_, err := c.GetOrLoad(context.Background(), "k", load)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "GetOrLoad")
	assert.Zero(t, c.Len(), "a timed-out load was cached")
}

func TestLoaderPanic(t *testing.T) {
	c := cache.New[string, int](cache.Options{})
	defer c.Close()
	_, err := c.GetOrLoad(context.Background(), "k", func(context.Context) (int, error) { panic("boom") })
	assert.EqualError(t, err, "cache: load panicked: boom", "GetOrLoad")
}

func TestCloseCancelsLoads(t *testing.T) {
	c := cache.New[string, int](cache.Options{})
	started := make(chan struct{})
	load := func(ctx context.Context) (int, error) { close(started); <-ctx.Done(); return 0, ctx.Err() }
	got := make(chan error, 1)
	go func() { _, err := c.GetOrLoad(context.Background(), "k", load); got <- err }()
	<-started
	c.Close() // returns only once the load has
	assert.ErrorIs(t, <-got, context.Canceled, "waiting caller")
	var calls atomic.Int64
	_, err := c.GetOrLoad(context.Background(), "k", value(1, &calls))
	assert.ErrorIs(t, err, cache.ErrClosed, "GetOrLoad after Close")
	assert.Zero(t, calls.Load(), "a closed cache started a load")
}
