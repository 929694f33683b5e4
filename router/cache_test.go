package router_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	_, err := a.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, 'v0') ON CONFLICT (id) DO UPDATE SET name = 'v0'", id)
	require.NoError(t, err)
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
		require.NoError(t, err)
		return u
	}
	eventually(t, 2*time.Second, "first value cached", func() bool { return get(cb, b).Name == "v0" })

	var delays []time.Duration
	for i := 1; i <= 500; i++ {
		want := fmt.Sprintf("v%d", i)
		require.NoError(t, rename(ctx, a, id, want))
		require.Equal(t, want, get(ca, a).Name, "write %d: the writing router's read", i)
		delays = append(delays, eventually(t, 2*time.Second, "new value on the other router", func() bool {
			return get(cb, b).Name == want
		}))
	}
	slices.Sort(delays)
	p50, p99 := delays[len(delays)/2], delays[len(delays)*99/100]
	// A figure, not a verdict: on a loaded machine scheduling alone can
	// take longer (the eventually above bounds each wait).
	t.Logf("other router saw the new value after p50 %v, p99 %v, max %v", p50, p99, delays[len(delays)-1])
	assert.NotZero(t, cb.Stats().Hits, "the other router's cache never hit: the test did not exercise the cache")

	// Kill b's listener backends: b must purge, reconnect and serve no stale value.
	before := b.Stats().Shards
	shIdx := slices.IndexFunc(before, func(s router.ShardStats) bool { return s.Name == b.User(id).Shard() })
	sh := shardOf(t, b, b.User(id).Shard())
	get(cb, b) // cached
	require.NoError(t, sh.Primary.SuperExec(ctx, fmt.Sprintf("SELECT pg_terminate_backend(%d)", before[shIdx].ListenerPID)))
	// While b's listener is down, a's write still reaches b's reads: they
	// bypass the cache, and after the reconnect the cache was purged.
	require.NoError(t, rename(ctx, a, id, "after-kill"))
	eventually(t, 3*time.Second, "b reads the write made while its listener was down", func() bool { return get(cb, b).Name == "after-kill" })
	eventually(t, 5*time.Second, "b's listener reconnected", func() bool {
		s := b.Stats().Shards[shIdx]
		return s.Listening && s.Reconnects > before[shIdx].Reconnects
	})
	for i := range 20 {
		want := fmt.Sprintf("post-reconnect-%d", i)
		require.NoError(t, rename(ctx, a, id, want))
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
	_, err := a.User(id).Exec(ctx, "DELETE FROM users WHERE id = $1", id)
	require.NoError(t, err)
	eventually(t, 5*time.Second, "b listening", func() bool { return b.Stats().Shards[0].Listening })
	_, err = cb.Get(ctx, b.User(id), key, loadUser(b.User(id), id))
	require.ErrorIs(t, err, cache.ErrNotFound, "missing user")
	// A session creates the user through a, invalidating its key, and reads
	// it through b at once, before the invalidation may have arrived: the
	// read waits for it, so the negative entry does not hide the write.
	sess := router.NewSession()
	sctx := router.WithSession(ctx, sess)
	err = a.User(id).Tx(sctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(sctx, "INSERT INTO users VALUES ($1, 'created')", id); err != nil {
			return err
		}
		return router.Invalidate(sctx, tx, key)
	})
	require.NoError(t, err)
	u, err := cb.Get(sctx, b.User(id), key, loadUser(b.User(id), id))
	require.NoError(t, err, "session read after its own create")
	require.Equal(t, "created", u.Name, "session read after its own create: %+v", u)
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
	_, err := r.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, 'x') ON CONFLICT (id) DO NOTHING", id)
	require.NoError(t, err)
	for range 3 {
		_, err := c.Get(router.WithPrimary(ctx), r.User(id), "user:555", loadUser(r.User(id), id))
		require.NoError(t, err)
	}
	st := c.Stats()
	assert.EqualValues(t, 2, st.Hits, "three Gets of one key: hits")
	assert.EqualValues(t, 1, st.Misses, "three Gets of one key: misses")
	assert.EqualValues(t, 1, st.Loads, "three Gets of one key: loads")
	require.NoError(t, rename(ctx, r, id, "y"))
	assert.EqualValues(t, 1, c.Stats().Invalidations, "one invalidated key: Invalidations")
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
		_, err := cb.Get(ctx, target, keys[i], func(context.Context) (string, error) { return "old", nil })
		require.NoError(t, err)
	}
	err := a.User(1).Tx(ctx, func(tx pgx.Tx) error { return router.Invalidate(ctx, tx, keys...) })
	require.NoError(t, err)
	fresh := func(context.Context) (string, error) { return "new", nil }
	eventually(t, 2*time.Second, "every key dropped in the other process", func() bool {
		v, err := cb.Get(ctx, target, keys[n-1], fresh)
		return err == nil && v == "new"
	})
	for _, k := range keys {
		v, err := cb.Get(ctx, target, k, fresh)
		require.NoError(t, err, "key %s after the invalidation", k)
		require.Equal(t, "new", v, "key %s after the invalidation", k)
	}
}
