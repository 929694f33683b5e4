package lookup_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/lookup"
	"github.com/pgshard/pgshard/router"
)

var errNoOwner = errors.New("no such user with that email")

// setEmail is the owner's side of a Change: the user's email goes from old
// to new ("" is none), or the update fails if the user no longer has old.
func setEmail(ctx context.Context, id int64, old, new string) func(pgx.Tx) error {
	return func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE users SET email = NULLIF($3, '') WHERE id = $1 AND coalesce(email, '') = $2", id, old, new)
		if err == nil && tag.RowsAffected() != 1 {
			err = errNoOwner
		}
		return err
	}
}

func TestChange(t *testing.T) {
	ctx := context.Background()
	r := open(t)
	l := emails(t, r)
	const id, other = int64(40001), int64(40002)
	require.NoError(t, l.Create(ctx, "first@example.com", id, insertUser(ctx, id, "first@example.com")))
	require.NoError(t, l.Create(ctx, "taken@example.com", other, insertUser(ctx, other, "taken@example.com")))
	owner := func(key string) int64 {
		t.Helper()
		o, err := l.Get(router.WithPrimary(ctx), key)
		if errors.Is(err, lookup.ErrNotFound) {
			return 0
		}
		require.NoError(t, err)
		return o
	}

	require.NoError(t, l.Change(ctx, "first@example.com", "second@example.com", id, setEmail(ctx, id, "first@example.com", "second@example.com")))
	assert.EqualValues(t, id, owner("second@example.com"))
	assert.Zero(t, owner("first@example.com"), "the old email is free")
	assertLookupRows(t, r, "first@example.com", 0)
	assertLookupRows(t, r, "second@example.com", 1)

	err := l.Change(ctx, "second@example.com", "taken@example.com", id, setEmail(ctx, id, "second@example.com", "taken@example.com"))
	require.ErrorIs(t, err, lookup.ErrDuplicate)
	assert.EqualValues(t, id, owner("second@example.com"), "a refused change changes nothing")
	assert.EqualValues(t, other, owner("taken@example.com"))
	assertLookupRows(t, r, "taken@example.com", 1)

	// The owner's update fails (its email is not what the caller thought):
	// the new email's lookup row goes again, the old one stays.
	err = l.Change(ctx, "stale@example.com", "third@example.com", id, setEmail(ctx, id, "stale@example.com", "third@example.com"))
	require.ErrorIs(t, err, errNoOwner)
	assertLookupRows(t, r, "third@example.com", 0)
	assert.EqualValues(t, id, owner("second@example.com"))

	// Deleting the email: owner first, lookup row last; then anyone may take it.
	require.NoError(t, l.Change(ctx, "second@example.com", "", id, setEmail(ctx, id, "second@example.com", "")))
	assert.Zero(t, owner("second@example.com"))
	assertLookupRows(t, r, "second@example.com", 0)
	require.NoError(t, l.Change(ctx, "taken@example.com", "second@example.com", other, setEmail(ctx, other, "taken@example.com", "second@example.com")))
	assert.EqualValues(t, other, owner("second@example.com"))
	assertLookupRows(t, r, "taken@example.com", 0)
}

// Two routers race to move different users to the same emails: one wins
// each, the other is refused, and each email has one lookup row and one
// owner row.
func TestConcurrentChanges(t *testing.T) {
	ctx := context.Background()
	a, b := open(t), open(t)
	la, lb := emails(t, a), emails(t, b)
	const keys = 20
	ids := func(k int) (int64, int64) { return int64(50000 + 2*k), int64(50001 + 2*k) }
	from := func(id int64) string { return fmt.Sprintf("from%d@example.com", id) }
	for k := range keys {
		x, y := ids(k)
		require.NoError(t, la.Create(ctx, from(x), x, insertUser(ctx, x, from(x))))
		require.NoError(t, la.Create(ctx, from(y), y, insertUser(ctx, y, from(y))))
	}
	errs := make([][2]error, keys)
	var wg sync.WaitGroup
	for k := range keys {
		x, y := ids(k)
		to := fmt.Sprintf("to%d@example.com", k)
		wg.Go(func() { errs[k][0] = la.Change(ctx, from(x), to, x, setEmail(ctx, x, from(x), to)) })
		wg.Go(func() { errs[k][1] = lb.Change(ctx, from(y), to, y, setEmail(ctx, y, from(y), to)) })
	}
	wg.Wait()
	for k := range keys {
		to := fmt.Sprintf("to%d@example.com", k)
		won := 0
		for _, err := range errs[k] {
			if err == nil {
				won++
			} else {
				require.ErrorIs(t, err, lookup.ErrDuplicate, to)
			}
		}
		require.Equal(t, 1, won, "%s: exactly one change wins", to)
		assertLookupRows(t, a, to, 1)
		held := 0
		for _, s := range a.Shards() {
			var n int
			require.NoError(t, s.QueryRow(router.WithPrimary(ctx), "SELECT count(*) FROM users WHERE email = $1", to).Scan(&n))
			held += n
		}
		assert.Equal(t, 1, held, "%s: owner rows", to)
	}
}
