package router_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
)

// countingLoad is loadUser that counts its calls.
func countingLoad(t router.Target, id int64, n *atomic.Int64) func(context.Context) (user, error) {
	load := loadUser(t, id)
	return func(ctx context.Context) (user, error) {
		n.Add(1)
		return load(ctx)
	}
}

// sameShard returns a user ID other than id on id's shard.
func sameShard(r *router.Router, id int64) int64 {
	for other := id + 1; ; other++ {
		if r.Map().Index(shard.HashInt64(other)) == r.Map().Index(shard.HashInt64(id)) {
			return other
		}
	}
}

func listening(r *router.Router) bool {
	for _, s := range r.Stats().Shards {
		if !s.Listening {
			return false
		}
	}
	return true
}

// Bug 1: a session's unrelated write must not make its next cached read of
// another key miss, nor evict that key for everyone.
func TestSessionReadKeepsCacheWarm(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 1000, TTL: time.Hour}
	cfg.SessionCacheWait = 5 * time.Second // generous: this machine is slow; the read must not go past
	r := open(t, cfg)
	schema(t, r)
	c := router.NewCache[user](r, "users", cache.Options{})
	const id = int64(424242)
	other := sameShard(r, id)
	_, err := r.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, 'K') ON CONFLICT (id) DO UPDATE SET name = 'K'", id)
	require.NoError(t, err)
	key := fmt.Sprintf("user:%d", id)
	var loads atomic.Int64
	load := countingLoad(r.User(id), id, &loads)
	for range 2 {
		// The primary: a replica may not have replayed the insert yet.
		_, err := c.Get(router.WithPrimary(ctx), r.User(id), key, load)
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, loads.Load(), "two plain Gets: one load")

	for i := range 20 {
		// A session writes an unrelated row on the same shard, then reads K.
		sess := router.NewSession()
		sctx := router.WithSession(ctx, sess)
		_, err = r.User(other).Exec(sctx, "INSERT INTO users VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $2", other, fmt.Sprint(i))
		require.NoError(t, err)
		require.NotZero(t, sess.LSN(r.User(id).Shard()), "the session's write recorded a position")
		info := &router.ReadInfo{}
		u, err := c.Get(router.WithReadInfo(sctx, info), r.User(id), key, load)
		require.NoError(t, err)
		assert.Equal(t, "K", u.Name)
		assert.Equal(t, "cache", info.ServedBy(), "round %d: the session's read of a key it did not invalidate", i)
		// And the entry is still there for everyone.
		info = &router.ReadInfo{}
		_, err = c.Get(router.WithReadInfo(ctx, info), r.User(id), key, load)
		require.NoError(t, err)
		assert.Equal(t, "cache", info.ServedBy(), "round %d: a plain read after the session's", i)
	}
	assert.EqualValues(t, 1, loads.Load(), "no session read loaded")
}

// Bug 1, the other half: a session's write that invalidates K, made
// through another process, is seen by the session's cached read here: the
// read waits until this process has received the invalidation.
func TestSessionReadSeesItsInvalidationFromAnotherProcess(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 1000, TTL: time.Hour}
	cfg.SessionCacheWait = 5 * time.Second
	a, b := open(t, cfg), open(t, cfg)
	schema(t, a)
	cb := router.NewCache[user](b, "users", cache.Options{})
	const id = int64(515151)
	key := fmt.Sprintf("user:%d", id)
	_, err := a.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, 'v0') ON CONFLICT (id) DO UPDATE SET name = 'v0'", id)
	require.NoError(t, err)
	for i := 1; i <= 100; i++ {
		_, err := cb.Get(router.WithPrimary(ctx), b.User(id), key, loadUser(b.User(id), id)) // cache what is there
		require.NoError(t, err)
		sess := router.NewSession()
		want := fmt.Sprintf("v%d", i)
		require.NoError(t, rename(router.WithSession(ctx, sess), a, id, want))
		u, err := cb.Get(router.WithSession(ctx, sess), b.User(id), key, loadUser(b.User(id), id))
		require.NoError(t, err)
		require.Equal(t, want, u.Name, "round %d: the session's read through the other process", i)
	}
}

// Bug 1: a session read that cannot wait reads past the entry, leaves it
// for the others, and stores its own result only when newer.
func TestSessionReadPastLeavesEntry(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 1000, TTL: time.Hour}
	cfg.SessionCacheWait = -1 // never wait: always read past when behind
	r := open(t, cfg)
	schema(t, r)
	c := router.NewCache[user](r, "users", cache.Options{})
	const id = int64(616161)
	other := sameShard(r, id)
	key := fmt.Sprintf("user:%d", id)
	_, err := r.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, 'K') ON CONFLICT (id) DO UPDATE SET name = 'K'", id)
	require.NoError(t, err)
	var loads atomic.Int64
	load := countingLoad(r.User(id), id, &loads)
	_, err = c.Get(router.WithPrimary(ctx), r.User(id), key, load)
	require.NoError(t, err)

	sess := router.NewSession()
	sctx := router.WithSession(ctx, sess)
	_, err = r.User(other).Exec(sctx, "INSERT INTO users VALUES ($1, 'x') ON CONFLICT (id) DO NOTHING", other)
	require.NoError(t, err)
	info := &router.ReadInfo{}
	u, err := c.Get(router.WithReadInfo(sctx, info), r.User(id), key, load)
	require.NoError(t, err)
	assert.Equal(t, "K", u.Name)
	assert.NotEqual(t, "cache", info.ServedBy(), "with no wait allowed, the session reads past the cache")
	assert.EqualValues(t, 2, loads.Load())

	info = &router.ReadInfo{}
	_, err = c.Get(router.WithReadInfo(ctx, info), r.User(id), key, load)
	require.NoError(t, err)
	assert.Equal(t, "cache", info.ServedBy(), "the entry stays for plain reads")
	assert.EqualValues(t, 2, loads.Load())
}

// Bug 2: Open returns with the listeners up, so the first two Gets of a
// key load once, and Stats counts every load.
func TestOpenWaitsForListeners(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 100, TTL: time.Hour}
	for i := range 3 {
		r := open(t, cfg)
		assert.True(t, listening(r), "open %d: every listener up when Open returns", i)
		c := router.NewCache[string](r, "k", cache.Options{})
		var loads atomic.Int64
		for range 2 {
			_, err := c.Get(ctx, r.User(1), "k", func(context.Context) (string, error) { loads.Add(1); return "v", nil })
			require.NoError(t, err)
		}
		assert.EqualValues(t, 1, loads.Load(), "open %d: two Gets straight after Open", i)
		assert.EqualValues(t, loads.Load(), c.Stats().Loads, "open %d: Stats().Loads counts every load", i)
		r.Close()
	}
}

// Bug 2: loads that bypass the cache (listener down) are counted too.
func TestStatsCountBypassedLoads(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	r := open(t, cfg)
	c := router.NewCache[string](r, "k", cache.Options{})
	var loads atomic.Int64
	load := func(context.Context) (string, error) { loads.Add(1); return "v", nil }
	sh := shardOf(t, r, r.User(1).Shard())
	idx := r.Map().Index(shard.HashInt64(1))
	// Hold the listener down: terminate it until the test is done with it.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if pid := r.Stats().Shards[idx].ListenerPID; pid != 0 {
				_ = sh.Primary.SuperExec(ctx, fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid))
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	eventually(t, 5*time.Second, "listener down", func() bool { return !r.Stats().Shards[idx].Listening })
	for range 3 {
		if r.Stats().Shards[idx].Listening {
			break
		}
		_, err := c.Get(ctx, r.User(1), "k", load)
		require.NoError(t, err)
	}
	close(stop)
	<-done
	assert.EqualValues(t, loads.Load(), c.Stats().Loads, "Stats().Loads counts bypassed loads")
}

// Bug 6: the zero cache.Options mean the same in router.NewCache as in
// cache.New: DefaultCapacity entries, not "never store".
func TestNewCacheZeroCapacityCaches(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster)) // Config.Cache is zero too
	c := router.NewCache[string](r, "zero", cache.Options{})
	var loads atomic.Int64
	for range 3 {
		_, err := c.Get(ctx, r.User(1), "k", func(context.Context) (string, error) { loads.Add(1); return "v", nil })
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, loads.Load(), "zero Capacity caches (cache.DefaultCapacity)")
	st := c.Stats()
	assert.EqualValues(t, 2, st.Hits)
	assert.EqualValues(t, 1, st.Misses)
}
