package cache_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pgshard/pgshard/cache"
)

// TestConcurrentUse mixes every operation on few keys, with Close in the middle, for the race
// detector and goleak; every value seen must be the one that belongs to its key.
func TestConcurrentUse(t *testing.T) {
	c := cache.New[int, int](cache.Options{
		Capacity: 64, Shards: 4, TTL: 2 * time.Millisecond, NegativeTTL: time.Millisecond,
		RefreshAfter: time.Millisecond, LoadTimeout: 50 * time.Millisecond, OnEvict: func(any, any) {},
	})
	load := func(k int) func(context.Context) (int, error) {
		return func(context.Context) (int, error) {
			if k%7 == 0 {
				return 0, fmt.Errorf("key %d: %w", k, cache.ErrNotFound)
			}
			return 10 * k, nil
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 3000 {
				k := r.IntN(100)
				switch r.IntN(8) {
				case 0:
					c.Set(k, 10*k)
				case 1:
					c.Delete(k)
				case 2:
					if r.IntN(100) == 0 {
						c.Purge()
					}
				case 3:
					if v, ok := c.Get(k); ok && v != 10*k {
						errs <- fmt.Errorf("Get(%d) = %d", k, v)
						return
					}
				default:
					v, err := c.GetOrLoad(context.Background(), k, load(k))
					if err == nil && v != 10*k || err != nil && !errors.Is(err, cache.ErrNotFound) && !errors.Is(err, cache.ErrClosed) {
						errs <- fmt.Errorf("GetOrLoad(%d) = %d, %v", k, v, err)
						return
					}
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	c.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	c.Stats()
}
