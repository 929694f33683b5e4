package cache_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/cache"
)

// newer keeps the cached value unless the loaded one is larger: the values stand for positions.
func newer(cached, loaded int) bool { return cached >= loaded }

func TestReplace(t *testing.T) {
	ctx := context.Background()
	value := func(v int) func(context.Context) (int, error) {
		return func(context.Context) (int, error) { return v, nil }
	}
	tests := []struct {
		name   string
		cached *int // nil: nothing cached
		loaded int
		want   int // Get afterwards
	}{
		{name: "nothing cached: stores", loaded: 5, want: 5},
		{name: "older cached: replaced", cached: ptr(3), loaded: 5, want: 5},
		{name: "newer cached: kept", cached: ptr(7), loaded: 5, want: 7},
		{name: "equal cached: kept", cached: ptr(5), loaded: 5, want: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New[string, int](cache.Options{Capacity: 10})
			defer c.Close()
			if tc.cached != nil {
				c.Set("k", *tc.cached)
			}
			got, err := c.Replace(ctx, "k", value(tc.loaded), newer)
			require.NoError(t, err)
			assert.Equal(t, tc.loaded, got, "Replace returns what it loaded")
			v, ok := c.Get("k")
			require.True(t, ok, "the key is cached after Replace")
			assert.Equal(t, tc.want, v)
		})
	}
}

// A Replace whose key is invalidated while it loads stores nothing, and it never takes the
// cached value away from the others while it runs.
func TestReplaceNeverRemovesAndNeverStoresStale(t *testing.T) {
	c := cache.New[string, int](cache.Options{Capacity: 10})
	defer c.Close()
	c.Set("k", 1)
	b := newBlockedLoad(9, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Replace(context.Background(), "k", b.load, newer)
		done <- err
	}()
	<-b.started
	v, ok := c.Get("k")
	require.True(t, ok, "the cached value stays while Replace loads")
	assert.Equal(t, 1, v)
	c.Delete("k")
	close(b.release)
	require.NoError(t, <-done)
	_, ok = c.Get("k")
	assert.False(t, ok, "a Replace overtaken by a Delete must not store its result")
}

// A cached "not found" always gives way to a loaded value.
func TestReplaceNotFound(t *testing.T) {
	ctx := context.Background()
	c := cache.New[string, int](cache.Options{Capacity: 10, NegativeTTL: 1 << 40})
	defer c.Close()
	_, err := c.GetOrLoad(ctx, "k", func(context.Context) (int, error) { return 100, cache.ErrNotFound })
	require.ErrorIs(t, err, cache.ErrNotFound)
	got, err := c.Replace(ctx, "k", func(context.Context) (int, error) { return 2, nil }, newer)
	require.NoError(t, err)
	assert.Equal(t, 2, got)
	v, ok := c.Get("k")
	assert.True(t, ok)
	assert.Equal(t, 2, v)
}

func ptr(v int) *int { return &v }
