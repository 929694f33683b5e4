package lookup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/lookup"
	"github.com/pgshard/pgshard/router"
)

func TestCreateGetDelete(t *testing.T) {
	ctx := context.Background()
	r := open(t)
	l := emails(t, r)
	const key = "ada@example.com"
	require.NoError(t, l.Create(ctx, key, 1001, insertUser(ctx, 1001, key)))
	owner, err := l.Get(ctx, key)
	require.NoError(t, err)
	assert.EqualValues(t, 1001, owner)

	err = l.Create(ctx, key, 1002, insertUser(ctx, 1002, key))
	require.ErrorIs(t, err, lookup.ErrDuplicate)
	var n int
	require.NoError(t, r.User(1002).QueryRow(router.WithPrimary(ctx), "SELECT count(*) FROM users WHERE id = 1002").Scan(&n))
	assert.Zero(t, n, "a refused duplicate writes no owner row")

	require.NoError(t, l.Delete(ctx, key, 1001, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM users WHERE id = 1001")
		return err
	}))
	_, err = l.Get(ctx, key)
	require.ErrorIs(t, err, lookup.ErrNotFound)
	require.NoError(t, l.Create(ctx, key, 1002, insertUser(ctx, 1002, key)))
	owner, err = l.Get(ctx, key)
	require.NoError(t, err)
	assert.EqualValues(t, 1002, owner)

	// An owner insert that fails leaves no lookup row behind.
	err = l.Create(ctx, "grace@example.com", 1002, insertUser(ctx, 1002, "grace@example.com")) // user 1002 exists
	require.Error(t, err)
	assertLookupRows(t, r, "grace@example.com", 0)
}

func assertLookupRows(t *testing.T, r *router.Router, key string, want int) {
	t.Helper()
	total := 0
	for _, s := range r.Shards() {
		var n int
		require.NoError(t, s.QueryRow(router.WithPrimary(context.Background()), "SELECT count(*) FROM user_emails WHERE key = $1", key).Scan(&n))
		total += n
	}
	assert.Equal(t, want, total, "lookup rows for %q", key)
}

// Two routers (two processes' worth of pools) race to create users with
// the same emails: each email ends up with exactly one live user, its
// lookup row points to it, and the losers leave nothing behind.
func TestConcurrentDuplicates(t *testing.T) {
	ctx := context.Background()
	a, b := open(t), open(t)
	la, lb := emails(t, a), emails(t, b)
	const keys, racers = 40, 4
	results := make([][]error, keys)
	var wg sync.WaitGroup
	for k := range keys {
		results[k] = make([]error, racers)
		key := fmt.Sprintf("race%d@example.com", k)
		for i := range racers {
			l := la
			if i%2 == 1 {
				l = lb
			}
			id := int64(20000 + k*racers + i)
			wg.Go(func() { results[k][i] = l.Create(ctx, key, id, insertUser(ctx, id, key)) })
		}
	}
	wg.Wait()
	for k := range keys {
		key := fmt.Sprintf("race%d@example.com", k)
		var winners []int64
		for i, err := range results[k] {
			if err == nil {
				winners = append(winners, int64(20000+k*racers+i))
			} else {
				require.ErrorIs(t, err, lookup.ErrDuplicate, "key %s racer %d", key, i)
			}
		}
		require.Len(t, winners, 1, "key %s: exactly one creator wins", key)
		owner, err := la.Get(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, winners[0], owner)
		// Owner rows holding the key: exactly one, on any shard.
		held := 0
		for _, s := range a.Shards() {
			var n int
			require.NoError(t, s.QueryRow(router.WithPrimary(ctx), "SELECT count(*) FROM users WHERE email = $1", key).Scan(&n))
			held += n
		}
		assert.Equal(t, 1, held, "key %s: owner rows", key)
		assertLookupRows(t, a, key, 1)
	}
}

// A process killed between its lookup row and its owner row leaves a
// dangling lookup row: it reads as not found, and the next writer takes
// it over.
func TestCrashBetweenWrites(t *testing.T) {
	ctx := context.Background()
	r := open(t)
	l := emails(t, r)
	const key = "crash@example.com"
	cfg, err := json.Marshal(config(cluster).Shards)
	require.NoError(t, err)
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOOKUP_CHILD="+string(cfg), "LOOKUP_KEY="+key, "LOOKUP_ID=30001", "LOOKUP_READY="+ready)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, 30*time.Second, 10*time.Millisecond)
	assertLookupRows(t, r, key, 1)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	_, err = l.Get(router.WithPrimary(ctx), key)
	require.ErrorIs(t, err, lookup.ErrNotFound, "a dangling lookup row reads as not found")
	require.NoError(t, l.Create(ctx, key, 30002, insertUser(ctx, 30002, key)), "the dangling row is taken over")
	owner, err := l.Get(router.WithPrimary(ctx), key)
	require.NoError(t, err)
	assert.EqualValues(t, 30002, owner)

	// A delete cut short after the owner row: the same.
	_, err = r.User(30002).Exec(ctx, "DELETE FROM users WHERE id = 30002")
	require.NoError(t, err)
	_, err = l.Get(router.WithPrimary(ctx), key)
	require.ErrorIs(t, err, lookup.ErrNotFound)
	require.NoError(t, l.Create(ctx, key, 30003, insertUser(ctx, 30003, key)))
	assertLookupRows(t, r, key, 1)
}
