package cache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgshard/pgshard/cache"
)

func Example() {
	names := cache.New[int64, string](cache.Options{
		Capacity:    1000,
		TTL:         time.Minute,
		NegativeTTL: 5 * time.Second,
	})
	defer names.Close()

	// In real use the loader queries the database.
	loadName := func(id int64) func(context.Context) (string, error) {
		return func(context.Context) (string, error) {
			fmt.Println("  query user", id)
			if id != 1 {
				return "", fmt.Errorf("user %d: %w", id, cache.ErrNotFound)
			}
			return "ada", nil
		}
	}
	ctx := context.Background()
	lookup := func(id int64) {
		name, hit, err := names.Lookup(ctx, id, loadName(id))
		fmt.Printf("user %d: name %q, hit %t, not found %t\n", id, name, hit, errors.Is(err, cache.ErrNotFound))
	}

	lookup(1)
	lookup(1)
	lookup(2)
	lookup(2)       // "not found" is remembered for NegativeTTL
	names.Delete(1) // after a write to user 1
	lookup(1)
	// Output:
	//   query user 1
	// user 1: name "ada", hit false, not found false
	// user 1: name "ada", hit true, not found false
	//   query user 2
	// user 2: name "", hit false, not found true
	// user 2: name "", hit true, not found true
	//   query user 1
	// user 1: name "ada", hit false, not found false
}
