package router_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// events records what a Tracer is told.
type events struct {
	mu     sync.Mutex
	reads  []replica.ReadEvent
	writes []replica.WriteEvent
}

func (e *events) tracer() replica.Tracer {
	return replica.TracerFuncs{
		Read: func(_ context.Context, ev replica.ReadEvent) {
			e.mu.Lock()
			e.reads = append(e.reads, ev)
			e.mu.Unlock()
		},
		Write: func(_ context.Context, ev replica.WriteEvent) {
			e.mu.Lock()
			e.writes = append(e.writes, ev)
			e.mu.Unlock()
		},
	}
}

// take returns and forgets what was recorded.
func (e *events) take() ([]replica.ReadEvent, []replica.WriteEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, w := e.reads, e.writes
	e.reads, e.writes = nil, nil
	return r, w
}

// BeginTx, SendBatch and CopyFrom report to the Tracer as Exec and Query
// do: a write's outcome once it is known, a read-only transaction as a read.
func TestTracerSeesTransactionsBatchesAndCopies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ev := &events{}
	cfg := config(t, cluster)
	cfg.Tracer = ev.tracer()
	r := open(t, cfg)
	schema(t, r)
	const id = int64(880001)
	target := r.User(id)
	_, err := target.Exec(ctx, "DELETE FROM posts WHERE user_id = $1", id)
	require.NoError(t, err)
	ev.take()

	oneWrite := func(op string, want replica.WriteOutcome, wantErr bool) replica.WriteEvent {
		t.Helper()
		reads, writes := ev.take()
		assert.Empty(t, reads, "%s: no read events", op)
		require.Len(t, writes, 1, "%s: one write event", op)
		w := writes[0]
		assert.Equal(t, op, w.Op)
		assert.Equal(t, target.Shard(), w.Shard)
		assert.NotEmpty(t, w.Node, "%s: the primary is named", op)
		assert.Equal(t, want, w.Outcome, "%s: outcome", op)
		assert.Equal(t, wantErr, w.Err != nil, "%s: error %v", op, w.Err)
		assert.Positive(t, w.Duration)
		return w
	}

	// A committed transaction, under a session: its position is reported.
	sctx := router.WithSession(ctx, router.NewSession())
	tx, err := target.BeginTx(sctx, pgx.TxOptions{})
	require.NoError(t, err)
	_, err = tx.Exec(sctx, "INSERT INTO posts VALUES ($1, 1, 'a')", id)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(sctx))
	w := oneWrite("tx", replica.WriteCommitted, false)
	assert.NotZero(t, w.LSN, "the commit's position")

	// A transaction rolled back, and one that failed: nothing committed.
	tx, err = target.BeginTx(ctx, pgx.TxOptions{})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	oneWrite("tx", replica.WriteFailed, true)
	tx, err = target.BeginTx(ctx, pgx.TxOptions{})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO posts VALUES ($1, 1, 'duplicate')", id)
	require.Error(t, err)
	require.Error(t, tx.Commit(ctx))
	oneWrite("tx", replica.WriteFailed, true)

	// A batch, committed and failed.
	b := &pgx.Batch{}
	b.Queue("INSERT INTO posts VALUES ($1, 2, 'b')", id)
	require.NoError(t, target.SendBatch(sctx, b).Close())
	assert.NotZero(t, oneWrite("batch", replica.WriteCommitted, false).LSN, "the batch's position, under a session")
	b = &pgx.Batch{}
	b.Queue("INSERT INTO posts VALUES ($1, 2, 'duplicate')", id)
	require.Error(t, target.SendBatch(ctx, b).Close())
	oneWrite("batch", replica.WriteFailed, true)

	// A copy, committed and failed.
	n, err := target.CopyFrom(ctx, pgx.Identifier{"posts"}, []string{"user_id", "id", "body"}, pgx.CopyFromRows([][]any{{id, 3, "c"}}))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	oneWrite("copy", replica.WriteCommitted, false)
	_, err = target.CopyFrom(ctx, pgx.Identifier{"posts"}, []string{"user_id", "id", "body"}, pgx.CopyFromRows([][]any{{id, 3, "duplicate"}}))
	require.Error(t, err)
	oneWrite("copy", replica.WriteFailed, true)

	// A read-only transaction is one read, on the node it ran on.
	tx, err = target.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	require.NoError(t, err)
	var count int
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM posts WHERE user_id = $1", id).Scan(&count))
	require.NoError(t, tx.Commit(ctx))
	reads, writes := ev.take()
	assert.Empty(t, writes, "a read-only transaction writes nothing")
	require.Len(t, reads, 1, "one read event")
	assert.Equal(t, target.Shard(), reads[0].Shard)
	assert.NotEmpty(t, reads[0].Node)
	assert.Equal(t, 1, reads[0].Attempt)
	assert.NoError(t, reads[0].Err)
}
