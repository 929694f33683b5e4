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
		if v != 7 || hit != want || err != nil {
			t.Errorf("Lookup #%d = %d, %t, %v; want 7, %t, nil", i, v, hit, err, want)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("loader ran %d times; want 1", got)
	}
	if st := c.Stats(); st.Hits != 2 || st.Misses != 1 || st.Loads != 1 {
		t.Errorf("Stats() = %+v; want 2 hits, 1 miss, 1 load", st)
	}
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
		t.Fatal(err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("%d callers ran %d loads; want 1", callers, got)
	}
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
			if v, hit, err := c.Lookup(ctx, "k", load); v != 0 || hit || err != tt.loadErr {
				t.Fatalf("first Lookup = %d, %t, %v; want 0, false, %v", v, hit, err, tt.loadErr)
			}
			clock.Advance(tt.advance)
			v, hit, err := c.Lookup(ctx, "k", load)
			if v != 0 || hit != tt.wantHit || err != tt.loadErr {
				t.Errorf("second Lookup = %d, %t, %v; want 0, %t, %v", v, hit, err, tt.wantHit, tt.loadErr)
			}
			if got := calls.Load(); got != tt.wantLoads {
				t.Errorf("loader ran %d times; want %d", got, tt.wantLoads)
			}
			if _, ok := c.Get("k"); ok {
				t.Error("Get hit a key whose load failed")
			}
			if got := c.Stats().LoadErrors; got != tt.wantErrs {
				t.Errorf("Stats().LoadErrors = %d; want %d", got, tt.wantErrs)
			}
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
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller got %v; want context.Canceled", err)
	}
	close(release)
	if err := <-loadErr; err != nil {
		t.Errorf("load's context ended with the caller's: %v", err)
	}
	if v := <-second; v != 1 {
		t.Errorf("waiting caller got %d; want 1", v)
	}
	if v, ok := c.Get("k"); !ok || v != 1 {
		t.Errorf("Get = %d, %t; want the loaded 1, true", v, ok)
	}
}

func TestCancelledCallerStartsNoLoad(t *testing.T) {
	c := cache.New[string, int](cache.Options{})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var calls atomic.Int64
	if _, err := c.GetOrLoad(ctx, "k", value(1, &calls)); !errors.Is(err, context.Canceled) {
		t.Errorf("GetOrLoad = %v; want context.Canceled", err)
	}
	if calls.Load() != 0 {
		t.Error("a caller whose context had ended started a load")
	}
}

func TestLoadTimeout(t *testing.T) {
	c := cache.New[string, int](cache.Options{LoadTimeout: 5 * time.Millisecond})
	defer c.Close()
	load := func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }
	if _, err := c.GetOrLoad(context.Background(), "k", load); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetOrLoad = %v; want context.DeadlineExceeded", err)
	}
	if c.Len() != 0 {
		t.Error("a timed-out load was cached")
	}
}

func TestLoaderPanic(t *testing.T) {
	c := cache.New[string, int](cache.Options{})
	defer c.Close()
	_, err := c.GetOrLoad(context.Background(), "k", func(context.Context) (int, error) { panic("boom") })
	if err == nil || err.Error() != "cache: load panicked: boom" {
		t.Errorf("GetOrLoad = %v; want cache: load panicked: boom", err)
	}
}

func TestCloseCancelsLoads(t *testing.T) {
	c := cache.New[string, int](cache.Options{})
	started := make(chan struct{})
	load := func(ctx context.Context) (int, error) { close(started); <-ctx.Done(); return 0, ctx.Err() }
	got := make(chan error, 1)
	go func() { _, err := c.GetOrLoad(context.Background(), "k", load); got <- err }()
	<-started
	c.Close() // returns only once the load has
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Errorf("waiting caller got %v; want context.Canceled", err)
	}
	var calls atomic.Int64
	if _, err := c.GetOrLoad(context.Background(), "k", value(1, &calls)); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("GetOrLoad after Close = %v; want ErrClosed", err)
	}
	if calls.Load() != 0 {
		t.Error("a closed cache started a load")
	}
}
