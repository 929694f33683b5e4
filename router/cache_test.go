package router_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/router"
)

type user struct {
	ID   int64
	Name string
}

func loadUser(t router.Target, id int64) func(context.Context) (user, error) {
	return func(ctx context.Context) (user, error) {
		u := user{ID: id}
		err := t.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", id).Scan(&u.Name)
		if errors.Is(err, pgx.ErrNoRows) {
			return u, fmt.Errorf("user %d: %w", id, cache.ErrNotFound)
		}
		return u, err
	}
}

func rename(ctx context.Context, r *router.Router, id int64, name string) error {
	return r.User(id).Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE users SET name = $2 WHERE id = $1", id, name); err != nil {
			return err
		}
		return router.Invalidate(ctx, tx, fmt.Sprintf("user:%d", id))
	})
}

// Two routers on one cluster behave like two app servers: a write through
// one, with Invalidate, reaches the other's cache.
func TestCacheCoherenceAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 1000, TTL: time.Hour}
	a, b := open(t, cfg), open(t, cfg)
	schema(t, a)
	ca := router.NewCache[user](a, "users", cache.Options{})
	cb := router.NewCache[user](b, "users", cache.Options{})
	const id = int64(1234)
	key := fmt.Sprintf("user:%d", id)
	if _, err := a.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, 'v0') ON CONFLICT (id) DO UPDATE SET name = 'v0'", id); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*router.Router{a, b} {
		eventually(t, 5*time.Second, "listeners up", func() bool {
			for _, s := range r.Stats().Shards {
				if !s.Listening {
					return false
				}
			}
			return true
		})
	}
	get := func(c *router.Cache[user], r *router.Router) user {
		u, err := c.Get(ctx, r.User(id), key, loadUser(r.User(id), id))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	eventually(t, 2*time.Second, "first value cached", func() bool { return get(cb, b).Name == "v0" })

	var delays []time.Duration
	for i := 1; i <= 500; i++ {
		want := fmt.Sprintf("v%d", i)
		if err := rename(ctx, a, id, want); err != nil {
			t.Fatal(err)
		}
		if got := get(ca, a).Name; got != want {
			t.Fatalf("write %d: the writing router read %q, want %q", i, got, want)
		}
		delays = append(delays, eventually(t, 2*time.Second, "new value on the other router", func() bool {
			return get(cb, b).Name == want
		}))
	}
	slices.Sort(delays)
	p50, p99 := delays[len(delays)/2], delays[len(delays)*99/100]
	// A figure, not a verdict: on a loaded machine scheduling alone can
	// take longer (the eventually above bounds each wait).
	t.Logf("other router saw the new value after p50 %v, p99 %v, max %v", p50, p99, delays[len(delays)-1])
	if hits := cb.Stats().Hits; hits == 0 {
		t.Error("the other router's cache never hit: the test did not exercise the cache")
	}

	// Kill b's listener backends: b must purge, reconnect and serve no stale value.
	before := b.Stats().Shards
	shIdx := slices.IndexFunc(before, func(s router.ShardStats) bool { return s.Name == b.User(id).Shard() })
	sh := shardOf(t, b, b.User(id).Shard())
	get(cb, b) // cached
	if err := sh.Primary.SuperExec(ctx, fmt.Sprintf("SELECT pg_terminate_backend(%d)", before[shIdx].ListenerPID)); err != nil {
		t.Fatal(err)
	}
	// While b's listener is down, a's write still reaches b's reads: they
	// bypass the cache, and after the reconnect the cache was purged.
	if err := rename(ctx, a, id, "after-kill"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "b reads the write made while its listener was down", func() bool { return get(cb, b).Name == "after-kill" })
	eventually(t, 5*time.Second, "b's listener reconnected", func() bool {
		s := b.Stats().Shards[shIdx]
		return s.Listening && s.Reconnects > before[shIdx].Reconnects
	})
	for i := range 20 {
		want := fmt.Sprintf("post-reconnect-%d", i)
		if err := rename(ctx, a, id, want); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "b sees writes after its reconnect", func() bool { return get(cb, b).Name == want })
	}
}

func TestCacheNegativeAndSession(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 1000, TTL: time.Hour, NegativeTTL: time.Hour}
	a, b := open(t, cfg), open(t, cfg)
	schema(t, a)
	cb := router.NewCache[user](b, "users", cache.Options{})
	const id = int64(98765)
	key := fmt.Sprintf("user:%d", id)
	if _, err := a.User(id).Exec(ctx, "DELETE FROM users WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b listening", func() bool { return b.Stats().Shards[0].Listening })
	if _, err := cb.Get(ctx, b.User(id), key, loadUser(b.User(id), id)); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("missing user: %v, want ErrNotFound", err)
	}
	// A session creates the user through a, invalidating its key, and reads
	// it through b at once, before the invalidation may have arrived: the
	// read waits for it, so the negative entry does not hide the write.
	sess := router.NewSession()
	sctx := router.WithSession(ctx, sess)
	err := a.User(id).Tx(sctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(sctx, "INSERT INTO users VALUES ($1, 'created')", id); err != nil {
			return err
		}
		return router.Invalidate(sctx, tx, key)
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := cb.Get(sctx, b.User(id), key, loadUser(b.User(id), id))
	if err != nil || u.Name != "created" {
		t.Fatalf("session read after its own create: %+v, %v", u, err)
	}
}

func TestCacheStatsCountEachGetOnce(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 100, TTL: time.Hour}
	r := open(t, cfg)
	schema(t, r)
	eventually(t, 5*time.Second, "listening", func() bool {
		for _, s := range r.Stats().Shards {
			if !s.Listening {
				return false
			}
		}
		return true
	})
	c := router.NewCache[user](r, "users", cache.Options{})
	const id = int64(555)
	if _, err := r.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, 'x') ON CONFLICT (id) DO NOTHING", id); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Get(router.WithPrimary(ctx), r.User(id), "user:555", loadUser(r.User(id), id)); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Hits != 2 || st.Misses != 1 || st.Loads != 1 {
		t.Errorf("three Gets of one key: %d hits, %d misses, %d loads; want 2, 1, 1", st.Hits, st.Misses, st.Loads)
	}
	if err := rename(ctx, r, id, "y"); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Invalidations != 1 {
		t.Errorf("one invalidated key: Invalidations = %d, want 1", st.Invalidations)
	}
}

// One transaction invalidating thousands of keys: the notifications are
// split under PostgreSQL's payload limit, and the other process drops them all.
func TestInvalidateManyKeys(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 10000, TTL: time.Hour}
	a, b := open(t, cfg), open(t, cfg)
	cb := router.NewCache[string](b, "many", cache.Options{})
	target := b.User(1)
	eventually(t, 5*time.Second, "b listening", func() bool {
		for _, s := range b.Stats().Shards {
			if !s.Listening {
				return false
			}
		}
		return true
	})
	const n = 3000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("many:%d", i)
		if _, err := cb.Get(ctx, target, keys[i], func(context.Context) (string, error) { return "old", nil }); err != nil {
			t.Fatal(err)
		}
	}
	err := a.User(1).Tx(ctx, func(tx pgx.Tx) error { return router.Invalidate(ctx, tx, keys...) })
	if err != nil {
		t.Fatal(err)
	}
	fresh := func(context.Context) (string, error) { return "new", nil }
	eventually(t, 2*time.Second, "every key dropped in the other process", func() bool {
		v, err := cb.Get(ctx, target, keys[n-1], fresh)
		return err == nil && v == "new"
	})
	for _, k := range keys {
		if v, err := cb.Get(ctx, target, k, fresh); err != nil || v != "new" {
			t.Fatalf("key %s after the invalidation: %q, %v", k, v, err)
		}
	}
}
