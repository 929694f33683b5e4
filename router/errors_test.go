package router_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// Bug 4: Exec accepts the same statements with a session as without.
func TestExecSameUnderSession(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	sess := router.NewSession()
	for _, sql := range []string{
		"SELECT 1; SELECT 2",
		"CREATE TABLE IF NOT EXISTS exec_multi (id int); INSERT INTO exec_multi VALUES (1)",
		"VACUUM exec_multi", // cannot run inside a transaction block
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS exec_multi_id ON exec_multi (id)",
	} {
		for _, c := range []struct {
			name string
			ctx  context.Context
		}{{"plain", ctx}, {"session", router.WithSession(ctx, sess)}} {
			_, err := r.User(1).Exec(c.ctx, sql)
			assert.NoError(t, err, "%s Exec(%q)", c.name, sql)
		}
	}
	assert.NotZero(t, sess.LSN(r.User(1).Shard()), "the session recorded its writes' position")
	// With arguments, one statement, as before.
	_, err := r.User(1).Exec(router.WithSession(ctx, sess), "INSERT INTO exec_multi VALUES ($1)", 2)
	assert.NoError(t, err)
}

// Bug 5: every error names its shard exactly once.
func TestErrorsNameShardOnce(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	target := r.User(1)
	once := func(t *testing.T, what string, err error) {
		t.Helper()
		require.Error(t, err, what)
		n := strings.Count(err.Error(), "shard "+target.Shard())
		assert.Equal(t, 1, n, "%s: %q names shard %s %d times", what, err, target.Shard(), n)
	}
	_, err := target.Exec(ctx, "SELECT * FROM no_such_table")
	once(t, "Exec", err)
	_, err = target.Exec(router.WithSession(ctx, router.NewSession()), "SELECT * FROM no_such_table WHERE 1 = $1", 1)
	once(t, "Exec under a session", err)
	err = target.Tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT * FROM no_such_table")
		return err
	})
	once(t, "Tx", err)
	_, err = target.Query(ctx, "SELECT * FROM no_such_table")
	once(t, "Query", err)
	err = target.QueryRow(ctx, "SELECT * FROM no_such_table").Scan()
	once(t, "QueryRow", err)

	_, err = router.Gather(ctx, r, "SELECT * FROM no_such_table", nil, pgx.RowTo[int], router.GatherOptions[int]{})
	require.Error(t, err)
	for _, name := range r.Map().Shards() {
		n := strings.Count(err.Error(), "shard "+name+":")
		assert.LessOrEqual(t, n, 1, "Gather: %q names shard %s %d times", err, name, n)
	}
	err = r.ExecAll(ctx, "SELECT * FROM no_such_table")
	require.Error(t, err)
	for _, name := range r.Map().Shards() {
		assert.Equal(t, 1, strings.Count(err.Error(), "shard "+name+":"), "ExecAll: %q", err)
	}
}

// Bug 5: a cancelled context surfaces as context.Canceled, not as a node
// failure, for every kind of call.
func TestCancelledContextSaysSo(t *testing.T) {
	r := open(t, config(t, cluster))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func(ctx context.Context) error{
		"Exec": func(ctx context.Context) error { _, err := r.User(1).Exec(ctx, "SELECT 1"); return err },
		"Exec under a session": func(ctx context.Context) error {
			_, err := r.User(1).Exec(router.WithSession(ctx, router.NewSession()), "SELECT $1::int", 1)
			return err
		},
		"Tx":       func(ctx context.Context) error { return r.User(1).Tx(ctx, func(pgx.Tx) error { return nil }) },
		"Query":    func(ctx context.Context) error { _, err := r.User(1).Query(ctx, "SELECT 1"); return err },
		"QueryRow": func(ctx context.Context) error { var n int; return r.User(1).QueryRow(ctx, "SELECT 1").Scan(&n) },
		"primary read": func(ctx context.Context) error {
			var n int
			return r.User(1).QueryRow(router.WithPrimary(ctx), "SELECT 1").Scan(&n)
		},
	}
	for name, call := range calls {
		err := call(cancelled)
		assert.ErrorIs(t, err, context.Canceled, name)
		assert.NotErrorIs(t, err, replica.ErrNoPrimary, name)
		assert.NotErrorIs(t, err, replica.ErrNoReplica, name)
		assert.NotContains(t, err.Error(), "no primary", name)
		assert.NotContains(t, err.Error(), "no eligible replica", name)
		assert.Equal(t, 1, strings.Count(err.Error(), "shard "), "%s: %q", name, err)
	}
	// Cancelled while it runs.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := r.User(1).Exec(ctx, "SELECT pg_sleep(10)")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotContains(t, err.Error(), "no primary")
}

// Bug 5: calls on a closing or closed router say the router closed.
func TestCallsAroundCloseSayClosed(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 10}
	r, err := router.Open(ctx, cfg)
	require.NoError(t, err)
	c := router.NewCache[int](r, "n", cache.Options{})
	read := func() error {
		var n int
		return r.User(1).QueryRow(ctx, "SELECT 1").Scan(&n)
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := read(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	r.Close()
	close(stop)
	wg.Wait()
	for _, err := range errs {
		assert.ErrorIs(t, err, router.ErrClosed)
	}
	for name, err := range map[string]error{
		"QueryRow": read(),
		"Gather": func() error {
			_, err := router.Gather(ctx, r, "SELECT 1", nil, pgx.RowTo[int], router.GatherOptions[int]{})
			return err
		}(),
		"ExecAll": r.ExecAll(ctx, "SELECT 1"),
		"Cache.Get": func() error {
			_, err := c.Get(ctx, r.User(1), "k", func(context.Context) (int, error) { return 1, nil })
			return err
		}(),
	} {
		assert.ErrorIs(t, err, router.ErrClosed, name)
		assert.False(t, errors.Is(err, replica.ErrNoReplica), name)
	}
}
