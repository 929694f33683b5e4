package reshard_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
)

// writer changes the source until stopped: new users and posts, updated
// bodies, deleted posts, posts that change owner, reference rows. It
// returns how many transactions committed.
func (e *env) writer(t *testing.T, ctx context.Context, seed uint64) func() int64 {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), expand(superDSN(e.source, e.db)))
	require.NoError(t, err)
	var (
		wg      sync.WaitGroup
		commits atomic.Int64
		errMu   sync.Mutex
		werr    error
	)
	stopCtx, stop := context.WithCancel(ctx)
	for w := range 2 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := 0; stopCtx.Err() == nil; i++ {
				uid := int64(r.IntN(400))
				var sql string
				switch r.IntN(6) {
				case 0:
					sql = fmt.Sprintf("INSERT INTO users VALUES (%d, 'u') ON CONFLICT (id) DO UPDATE SET name = users.name || 'x'", 1000+w*100000+i)
				case 1:
					sql = fmt.Sprintf("UPDATE posts SET body = body || '!' WHERE (user_id, id) IN (SELECT user_id, id FROM posts WHERE user_id = %d LIMIT 2)", uid)
				case 2:
					sql = fmt.Sprintf("DELETE FROM posts WHERE (user_id, id) IN (SELECT user_id, id FROM posts WHERE user_id = %d LIMIT 1)", uid)
				case 3:
					sql = fmt.Sprintf("UPDATE posts SET user_id = %d WHERE (user_id, id) IN (SELECT user_id, id FROM posts WHERE user_id = %d LIMIT 1)", 400+r.IntN(400), uid)
				case 4:
					sql = fmt.Sprintf("INSERT INTO countries VALUES ('c%d', 'n') ON CONFLICT (code) DO UPDATE SET name = countries.name || 'y'", r.IntN(50))
				default:
					sql = fmt.Sprintf("BEGIN; INSERT INTO posts VALUES (%d, %d, repeat('p', %d)); INSERT INTO posts VALUES (%d, %d, 'q'); COMMIT",
						uid, 1_000_000+w*1_000_000+i, r.IntN(3000), uid+1, 1_000_000+w*1_000_000+i)
				}
				if _, err := pool.Exec(stopCtx, sql); err != nil {
					if stopCtx.Err() != nil {
						break
					}
					if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "23505" {
						continue // a random key taken: the application's error, not the test's
					}
					errMu.Lock()
					werr = errors.Join(werr, fmt.Errorf("%s: %w", sql, err))
					errMu.Unlock()
					break
				}
				commits.Add(1)
			}
		})
	}
	return func() int64 {
		stop()
		wg.Wait()
		pool.Close()
		require.NoError(t, werr)
		return commits.Load()
	}
}

// seed fills the source with users, posts (some with TOASTed bodies) and
// countries.
func (e *env) seed(t testing.TB, users int) {
	t.Helper()
	src := connectDSN(t, e.source, e.db)
	_, err := src.Exec(context.Background(), fmt.Sprintf(`
		INSERT INTO users SELECT g, 'user ' || g FROM generate_series(0, %[1]d - 1) g;
		INSERT INTO posts SELECT g %% %[1]d, g, CASE WHEN g %% 50 = 0 THEN repeat(md5(g::text), 200) ELSE 'post ' || g END FROM generate_series(0, 2 * %[1]d - 1) g;
		INSERT INTO countries SELECT 'c' || g, 'country ' || g FROM generate_series(0, 19) g;`, users))
	require.NoError(t, err)
}

func waitPhase(t testing.TB, e *env, name string, want reshard.Phase) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := e.m.Get(context.Background(), name)
		return err == nil && st.Phase == want
	}, time.Minute, 20*time.Millisecond, "phase %s", want)
}

// The copy and the stream under concurrent writes, the process running
// the workflow killed mid-stream and resumed: the targets end with exactly
// the source's rows, each on the target that owns its key; cancel then
// leaves nothing behind.
func TestCopyAndStreamUnderWrites(t *testing.T) {
	e := newEnv(t, true) // the schema copied with pg_dump
	ctx := context.Background()
	e.seed(t, 2000)
	st, err := e.m.Create(ctx, e.spec("split"))
	require.NoError(t, err)
	require.Equal(t, reshard.PhaseCreated, st.Phase)

	stopWrites := e.writer(t, ctx, 1)
	runCtx, kill := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.m.Run(runCtx, "split") }()
	waitPhase(t, e, "split", reshard.PhaseStreaming)
	time.Sleep(300 * time.Millisecond) // some changes stream
	kill()
	require.ErrorIs(t, <-done, context.Canceled)

	time.Sleep(200 * time.Millisecond) // writes go on while nothing streams
	runCtx, kill = context.WithCancel(ctx)
	defer kill()
	go func() { done <- e.m.Run(runCtx, "split") }()
	time.Sleep(300 * time.Millisecond)
	commits := stopWrites()
	require.Positive(t, commits)
	require.NoError(t, e.m.CatchUp(ctx, "split", time.Minute))
	e.requireSame(t)

	status, err := e.m.Status(ctx, "split")
	require.NoError(t, err)
	require.Equal(t, reshard.PhaseStreaming, status.Phase)
	require.True(t, status.SlotExists)
	require.GreaterOrEqual(t, status.Copied["users"], int64(2000), "the seeded users and those written before the snapshot")
	require.GreaterOrEqual(t, status.Copied["countries"], int64(40), "20 or more reference rows to each of 2 targets")
	require.Zero(t, status.Copied["countries"]%2, "each reference row to both targets")
	require.Len(t, status.Applied, 2)
	t.Logf("%d source transactions; copy %v; status lag %d bytes", commits, status.CopyTime, status.LagBytes)

	_, err = e.m.Cancel(ctx, "split")
	require.NoError(t, err)
	require.NoError(t, <-done, "Run ends when the workflow is cancelled")
	status, err = e.m.Status(ctx, "split")
	require.NoError(t, err)
	require.Equal(t, reshard.PhaseCancelled, status.Phase)
	require.False(t, status.SlotExists)
	for _, n := range e.targets {
		require.Empty(t, rows(t, connectDSN(t, n, e.db), "posts"))
	}
	src := connectDSN(t, e.source, e.db)
	var pubs int
	require.NoError(t, src.QueryRow(ctx, "SELECT count(*) FROM pg_publication").Scan(&pubs))
	require.Zero(t, pubs)
}

// The process killed during the copy: the next Run drops the slot and the
// rows of the interrupted copy and copies again, under writes.
func TestResumeAfterKillDuringCopy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seed(t, 20000)
	_, err := e.m.Create(ctx, e.spec("recopy"))
	require.NoError(t, err)
	stopWrites := e.writer(t, ctx, 2)

	runCtx, kill := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.m.Run(runCtx, "recopy") }()
	src := connectDSN(t, e.source, e.db)
	require.Eventually(t, func() bool {
		var n int
		err := src.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgshard_reshard_recopy'").Scan(&n)
		return err == nil && n == 1
	}, time.Minute, time.Millisecond)
	kill()
	require.ErrorIs(t, <-done, context.Canceled)
	st, err := e.m.Get(ctx, "recopy")
	require.NoError(t, err)
	t.Logf("killed in phase %s", st.Phase)

	runCtx, kill = context.WithCancel(ctx)
	defer kill()
	go func() { done <- e.m.Run(runCtx, "recopy") }()
	waitPhase(t, e, "recopy", reshard.PhaseStreaming)
	stopWrites()
	require.NoError(t, e.m.CatchUp(ctx, "recopy", time.Minute))
	e.requireSame(t)
	st, err = e.m.Get(ctx, "recopy")
	require.NoError(t, err)
	if st.CopyAttempts < 2 {
		t.Logf("the kill came after the copy (attempts %d): the stream resumed instead", st.CopyAttempts)
	}
	kill()
	<-done
}
