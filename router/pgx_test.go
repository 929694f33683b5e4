package router_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/router"
)

func TestBeginTx(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := config(t, cluster)
	cfg.Cache = cache.Options{Capacity: 100, TTL: time.Hour}
	r := open(t, cfg)
	schema(t, r)
	c := router.NewCache[user](r, "users", cache.Options{})
	const id = int64(777001)
	key := fmt.Sprintf("user:%d", id)
	target := r.User(id)
	_, err := target.Exec(ctx, "INSERT INTO users VALUES ($1, 'before') ON CONFLICT (id) DO UPDATE SET name = 'before'", id)
	require.NoError(t, err)
	_, err = c.Get(router.WithPrimary(ctx), target, key, loadUser(target, id))
	require.NoError(t, err)

	// Many more transactions than a pool has connections: each returns its own.
	for i := range 40 {
		sess := router.NewSession()
		sctx := router.WithSession(ctx, sess)
		tx, err := target.BeginTx(sctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		require.NoError(t, err)
		_, err = tx.Exec(sctx, "UPDATE users SET name = $2 WHERE id = $1", id, fmt.Sprint("v", i))
		require.NoError(t, err)
		require.NoError(t, router.Invalidate(sctx, tx, key))
		require.NoError(t, tx.Commit(sctx))
		assert.ErrorIs(t, tx.Rollback(sctx), pgx.ErrTxClosed, "a deferred Rollback after Commit")
		assert.NotZero(t, sess.LSN(target.Shard()), "the session recorded the commit")
		u, err := c.Get(sctx, target, key, loadUser(target, id))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint("v", i), u.Name, "the invalidated key reloads")
	}

	// Rollback discards, and releases the connection.
	for range 40 {
		tx, err := target.BeginTx(ctx, pgx.TxOptions{})
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "UPDATE users SET name = 'rolled back' WHERE id = $1", id)
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))
	}
	var name string
	require.NoError(t, target.QueryRow(router.WithPrimary(ctx), "SELECT name FROM users WHERE id = $1", id).Scan(&name))
	assert.Equal(t, "v39", name)

	// A failed statement: Commit reports the rollback.
	tx, err := target.BeginTx(ctx, pgx.TxOptions{})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT * FROM no_such_table")
	require.Error(t, err)
	assert.ErrorIs(t, tx.Commit(ctx), pgx.ErrTxCommitRollback)
}

// A read-only transaction runs where a read may: on a replica within the
// bound, at the session's position; a serializable one on the primary.
func TestBeginTxReadOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := open(t, config(t, cluster))
	schema(t, r)
	const id = int64(777002)
	target := r.User(id)
	served := func(ctx context.Context, opts pgx.TxOptions) (string, string) {
		info := &router.ReadInfo{}
		var name string
		err := target.BeginTxFunc(router.WithReadInfo(ctx, info), opts, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT coalesce((SELECT name FROM users WHERE id = $1), '')", id).Scan(&name)
		})
		require.NoError(t, err)
		return info.ServedBy(), name
	}
	ro := pgx.TxOptions{AccessMode: pgx.ReadOnly}
	eventually(t, 5*time.Second, "a read-only transaction on the replica", func() bool {
		by, _ := served(ctx, ro)
		return by == "replica"
	})
	for i := range 30 {
		sess := router.NewSession()
		sctx := router.WithSession(ctx, sess)
		want := fmt.Sprint("n", i)
		_, err := target.Exec(sctx, "INSERT INTO users VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $2", id, want)
		require.NoError(t, err)
		_, got := served(sctx, ro)
		require.Equal(t, want, got, "round %d: the session's read-only transaction sees its write", i)
	}
	tx, err := target.BeginTx(ctx, ro)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE users SET name = 'x' WHERE id = $1", id)
	assert.Error(t, err, "a read-only transaction refuses writes")
	require.NoError(t, tx.Rollback(ctx))

	// Serializable read-only runs on the primary (no replica runs one).
	info := &router.ReadInfo{}
	err = target.BeginTxFunc(router.WithReadInfo(ctx, info), pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.Serializable, DeferrableMode: pgx.Deferrable},
		func(tx pgx.Tx) error { _, err := tx.Exec(ctx, "SELECT 1"); return err })
	require.NoError(t, err)
	assert.NotEqual(t, "replica", info.ServedBy())
}

func TestSendBatchAndCopyFrom(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := open(t, config(t, cluster))
	require.NoError(t, r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS items (owner bigint, n int)"))
	const owner = int64(777003)
	target := r.User(owner)
	count := func(ctx context.Context) int {
		var n int
		require.NoError(t, target.QueryRow(ctx, "SELECT count(*) FROM items WHERE owner = $1", owner).Scan(&n))
		return n
	}
	_, err := target.Exec(ctx, "DELETE FROM items WHERE owner = $1", owner)
	require.NoError(t, err)

	for i := range 20 {
		sess := router.NewSession()
		sctx := router.WithSession(ctx, sess)
		b := &pgx.Batch{}
		for j := range 5 {
			b.Queue("INSERT INTO items VALUES ($1, $2)", owner, i*5+j)
		}
		require.NoError(t, target.SendBatch(sctx, b).Close())
		assert.Equal(t, (i+1)*5, count(sctx), "round %d: the session reads its batch", i)
	}

	// A batch that begins a transaction leaves it to the caller.
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue("INSERT INTO items VALUES ($1, -1)", owner)
	sess := router.NewSession()
	sctx := router.WithSession(ctx, sess)
	br := target.SendBatch(sctx, b)
	tx := br.Tx()
	require.NotNil(t, tx)
	require.NoError(t, br.Close())
	_, err = tx.Exec(sctx, "INSERT INTO items VALUES ($1, -2)", owner)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(sctx))
	assert.Equal(t, 102, count(sctx))

	rows := make([][]any, 1000)
	for i := range rows {
		rows[i] = []any{owner, 1000 + i}
	}
	sess = router.NewSession()
	sctx = router.WithSession(ctx, sess)
	n, err := target.CopyFrom(sctx, pgx.Identifier{"items"}, []string{"owner", "n"}, pgx.CopyFromRows(rows))
	require.NoError(t, err)
	assert.EqualValues(t, 1000, n)
	assert.Equal(t, 1102, count(sctx), "the session reads its copy")

	_, err = target.CopyFrom(ctx, pgx.Identifier{"no_such_table"}, []string{"a"}, pgx.CopyFromRows([][]any{{1}}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "shard "+target.Shard())
}

func TestPing(t *testing.T) {
	ctx := context.Background()
	r, err := router.Open(ctx, config(t, cluster))
	require.NoError(t, err)
	require.NoError(t, r.Ping(ctx))
	r.Close()
	assert.ErrorIs(t, r.Ping(ctx), router.ErrClosed)
}
