package replica_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
)

// heartbeat writes rows 1, 2, 3, ... to hb straight on the primary and
// remembers when each was acknowledged: the truth that reads through the
// set are measured against.
type heartbeat struct {
	mu    sync.Mutex
	acked []time.Time // acked[i] is when row i+1 was acknowledged
}

// staleness is how stale a read that saw rows up to seen, sent at sent,
// provably was: the age, at sent, of the first acknowledged row it missed.
func (h *heartbeat) staleness(seen int64, sent time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if int(seen) >= len(h.acked) || !h.acked[seen].Before(sent) {
		return 0
	}
	return sent.Sub(h.acked[seen])
}

func startHeartbeat(t *testing.T, ctx context.Context, primaryDSN string) *heartbeat {
	t.Helper()
	pool, err := pgxpool.New(ctx, primaryDSN)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, "DROP TABLE IF EXISTS hb; CREATE TABLE hb (id bigint PRIMARY KEY)")
	require.NoError(t, err)
	h := &heartbeat{}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for id := int64(1); ctx.Err() == nil; id++ {
			if _, err := pool.Exec(ctx, "INSERT INTO hb VALUES ($1)", id); err != nil {
				return
			}
			h.mu.Lock()
			h.acked = append(h.acked, time.Now())
			h.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return h
}

// readHB reads through the set for d and returns how many reads a replica
// served, how many failed, and the stalest a read provably was.
func readHB(ctx context.Context, s *replica.Set, h *heartbeat, d time.Duration) (byReplica, failed int, worst time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		sent := time.Now()
		var seen int64
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		row := s.ReadRow(rctx, replica.ReadOptions{}, "SELECT coalesce(max(id), 0) FROM hb")
		err := row.Scan(&seen)
		cancel()
		if err != nil {
			failed++
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if row.Served().Role == replica.RoleReplica {
			byReplica++
		}
		worst = max(worst, h.staleness(seen, sent))
	}
	return byReplica, failed, worst
}

// A set cut off from its primary (a blackholed path), with replay paused on
// its replica while writes go on, serves no read staler than MaxLag:
// neither when the primary's samples stop (issue: lag history lost on a
// primary blip) nor while it stays cut off (issue: unboundedly stale
// reads). Every read is measured against the writes acknowledged before it.
func TestNoReadStalerThanMaxLagWhenCutOffFromPrimary(t *testing.T) {
	ctx := context.Background()
	sh := cluster.Shards()[0]
	h := startHeartbeat(t, ctx, sh.Primary.DSN())
	px, err := sh.Primary.Proxy(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { px.Close() })
	opts := fast
	opts.CheckTimeout = 100 * time.Millisecond
	opts.ConnectTimeout = time.Second
	s, err := replica.New(ctx, replica.Config{Name: "cut", Primary: px.DSN(), Replicas: []string{sh.Replicas[0].DSN()}, Options: opts})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	eventually(t, 2*time.Second, "replica eligible", func() bool { return replicaStats(s, sh.Replicas[0].Port()).Eligible })

	byReplica, _, worst := readHB(ctx, s, h, 300*time.Millisecond)
	assert.Positive(t, byReplica, "reads served by the replica before any fault")
	assert.LessOrEqual(t, worst, opts.MaxLag)

	// Replay paused, then the primary blips away from this process only.
	require.NoError(t, sh.Replicas[0].PauseReplay(ctx))
	t.Cleanup(func() { sh.Replicas[0].ResumeReplay(context.Background()) })
	_, _, worst = readHB(ctx, s, h, 2*opts.MaxLag)
	assert.LessOrEqual(t, worst, opts.MaxLag, "a read with replay paused")
	px.Blackhole()
	_, _, worst = readHB(ctx, s, h, 500*time.Millisecond)
	px.Heal()
	assert.LessOrEqual(t, worst, opts.MaxLag, "a read during and after the primary's blip")
	_, _, worst = readHB(ctx, s, h, 500*time.Millisecond)
	assert.LessOrEqual(t, worst, opts.MaxLag, "a read after the blip")

	// Caught up again, then cut off for longer than MaxLag: replica reads
	// stop within the bound, and fail saying why.
	require.NoError(t, sh.Replicas[0].ResumeReplay(ctx))
	require.NoError(t, sh.Replicas[0].WaitCaughtUp(ctx, sh.Primary))
	eventually(t, 2*time.Second, "replica eligible again", func() bool { return replicaStats(s, sh.Replicas[0].Port()).Eligible })
	require.NoError(t, sh.Replicas[0].PauseReplay(ctx))
	px.Blackhole()
	byReplica, failed, worst := readHB(ctx, s, h, 4*opts.MaxLag)
	px.Heal()
	assert.LessOrEqual(t, worst, opts.MaxLag, "a read while cut off from the primary")
	assert.Positive(t, failed, "reads refused once the bound passed")
	t.Logf("cut off: %d reads by the replica, %d refused; worst staleness %s", byReplica, failed, worst)
}

// Terminating the checker's session and the pool's connections on a
// healthy primary, again and again, never makes writes fail as "no
// primary" (issue: a healthy primary demoted by one lost session).
func TestHealthyPrimaryKeepsWritesWhenSessionsAreTerminated(t *testing.T) {
	ctx := context.Background()
	s := newSet(t, cluster, fast)
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS killed (id bigserial PRIMARY KEY)")
	sh := cluster.Shards()[0]
	stop := make(chan struct{})
	var kills atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			_ = sh.Primary.SuperExec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'pgshard' AND pid <> pg_backend_pid()")
			kills.Add(1)
		}
	}()
	var ok, unknown, ended int
	var failures []error
	for i, end := 0, time.Now().Add(1500*time.Millisecond); time.Now().Before(end); i++ {
		var err error
		if i%2 == 0 {
			_, _, err = s.ExecLSN(ctx, "INSERT INTO killed DEFAULT VALUES")
		} else {
			_, err = s.Tx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "INSERT INTO killed DEFAULT VALUES")
				return err
			})
		}
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			ok++
		case errors.Is(err, replica.ErrOutcomeUnknown):
			unknown++ // the answer was lost with the connection; it says so
		case errors.Is(err, replica.ErrCommitLSN):
			ok++ // committed; the session was cut just before its position was read
		case !errors.Is(err, replica.ErrNoPrimary) && strings.Contains(err.Error(), "ended the session; nothing was committed"):
			ended++ // terminated at every send; it says so
		case !errors.Is(err, replica.ErrNoPrimary) && errors.As(err, &pgErr) && pgErr.Code == "57P01":
			ended++ // a transaction's statement whose session was ended under it; it says so
		default:
			failures = append(failures, err)
		}
	}
	close(stop)
	t.Logf("%d terminations: %d writes committed, %d outcome unknown, %d terminated at every send, %d failed otherwise", kills.Load(), ok, unknown, ended, len(failures))
	assert.Empty(t, failures, "writes refused with the primary up")
	assert.Positive(t, ok)
	assert.False(t, s.Stats().PrimaryDown, "primary marked down")
}

// A replica listed under a shard whose primary it does not follow is
// refused, with an error naming both systems (issue: a replica of another
// shard accepted).
func TestReplicaOfAnotherShardIsRefused(t *testing.T) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 2, Replicas: 1})
	require.NoError(t, err)
	defer c.Close()
	var refused atomic.Pointer[replica.NodeEvent]
	opts := fast
	opts.Tracer = replica.TracerFuncs{Node: func(e replica.NodeEvent) {
		if e.Kind == replica.NodeRefused {
			refused.Store(&e)
		}
	}}
	foreign := c.Shards()[1].Replicas[0]
	s, err := replica.New(ctx, replica.Config{Name: "mixed", Primary: c.Shards()[0].Primary.DSN(),
		Replicas: []string{foreign.DSN()}, Options: opts})
	require.NoError(t, err)
	defer s.Close()
	eventually(t, 2*time.Second, "refusal traced", func() bool { return refused.Load() != nil })
	for range 20 {
		var port int
		row := s.ReadRow(ctx, replica.ReadOptions{}, "SELECT inet_server_port()")
		require.NoError(t, row.Scan(&port))
		require.Equal(t, c.Shards()[0].Primary.Port(), port, "a read went to the foreign replica")
	}
	n := replicaStats(s, foreign.Port())
	assert.False(t, n.Eligible)
	assert.Equal(t, replica.ReasonForeign, n.Reason)
	assert.Contains(t, n.Error, "database system")
	assert.Contains(t, refused.Load().Err, "the shard's primary to")
}

// Reads in flight on a replica that freezes move to another node after
// about AttemptTimeout instead of holding for the caller's whole timeout
// (issue: a frozen replica holds reads for the request timeout).
func TestFrozenReplicaCostsAReadAboutAnAttempt(t *testing.T) {
	// Under a caller's context that ends and one that never does: the set
	// watches the acquire differently in each.
	for _, deadline := range []bool{true, false} {
		t.Run(fmt.Sprintf("deadline=%v", deadline), func(t *testing.T) {
			frozenReplicaReads(t, deadline)
		})
	}
}

func frozenReplicaReads(t *testing.T, deadline bool) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 1, Replicas: 1})
	require.NoError(t, err)
	defer c.Close()
	var retried atomic.Int64
	opts := fast
	opts.Tracer = replica.TracerFuncs{Read: func(_ context.Context, e replica.ReadEvent) {
		if e.Attempt == 2 {
			retried.Add(1)
		}
	}}
	s := newSet(t, c, opts)
	sh := c.Shards()[0]
	eventually(t, 2*time.Second, "replica eligible", func() bool { return replicaStats(s, sh.Replicas[0].Port()).Eligible })
	var wg sync.WaitGroup
	var errs, reads, slow atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
				// The caller allows 5 s, far more than a retry needs; a
				// read without a deadline that takes as long counts as
				// failed too.
				rctx, cancel := ctx, context.CancelFunc(func() {})
				if deadline {
					rctx, cancel = context.WithTimeout(ctx, 5*time.Second)
				}
				sent := time.Now()
				var one int
				if err := s.QueryRow(rctx, "SELECT 1 FROM pg_sleep(0.01)").Scan(&one); err != nil {
					errs.Add(1)
					t.Logf("read: %v", err)
				}
				if time.Since(sent) > 5*time.Second {
					slow.Add(1)
				}
				cancel()
				reads.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, sh.Replicas[0].FreezeForTest(ctx, t))
	// A read stuck on the frozen replica ends at the thaw at the latest.
	finished, thawed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(thawed)
		select {
		case <-finished:
		case <-time.After(8 * time.Second):
			_ = sh.Replicas[0].Thaw(ctx)
		}
	}()
	wg.Wait()
	close(finished)
	require.NoError(t, sh.Replicas[0].Thaw(ctx))
	t.Logf("%d reads, %d failed, %d over 5 s, %d sent a second time", reads.Load(), errs.Load(), slow.Load(), retried.Load())
	assert.Zero(t, errs.Load(), "reads failed although the primary was up")
	assert.Zero(t, slow.Load(), "reads waited on the frozen replica")
	assert.Positive(t, retried.Load(), "no read was moved off the frozen replica")
	<-thawed
}

// A write whose answer is lost because the primary froze after it was sent
// reports ErrOutcomeUnknown, not "no primary" (issue: writes answered as
// failed commit later). After the thaw the write is indeed there.
func TestWriteToFrozenPrimaryIsOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 1})
	require.NoError(t, err)
	defer c.Close()
	s := newSet(t, c, fast)
	mustExec(t, s, "CREATE TABLE frozen (id int PRIMARY KEY)")
	p := c.Shards()[0].Primary
	require.NoError(t, p.FreezeForTest(ctx, t))
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, _, err = s.ExecLSN(wctx, "INSERT INTO frozen VALUES (1)")
	cancel()
	require.Error(t, err)
	assert.ErrorIs(t, err, replica.ErrOutcomeUnknown)
	assert.NotErrorIs(t, err, replica.ErrNoPrimary)
	require.NoError(t, p.Thaw(ctx))
	var n int
	require.NoError(t, s.ReadRow(ctx, replica.ReadOptions{Primary: true}, "SELECT count(*) FROM frozen").Scan(&n))
	t.Logf("after the thaw the write whose outcome was unknown is there: %d row(s)", n)
}

// A cancelled context says so, not "no primary"; an interval too short to
// be meant is refused.
func TestCancelledAndInvalid(t *testing.T) {
	s := newSet(t, cluster, fast)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Exec(ctx, "SELECT 1")
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, replica.ErrNoPrimary)
	_, err = s.Read(ctx, replica.ReadOptions{}, "SELECT 1")
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, replica.ErrNoReplica)

	_, err = replica.New(context.Background(), replica.Config{Name: "x", Primary: cluster.Shards()[0].Primary.DSN(),
		Options: replica.Options{CheckInterval: time.Nanosecond}})
	require.ErrorIs(t, err, replica.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "CheckInterval")
}

// A read that must see a session's write, sent while the shard's primary
// is shutting down and before a check has seen it go, is served by the
// replica once it replays the write, rather than failing on the primary it
// fell back to (chaos scenario Failover: reads failed in the first 40 ms
// of a fast shutdown with "the database system is shutting down").
func TestSessionReadWaitsForReplicaWhenFallbackPrimaryIsGone(t *testing.T) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 1, Replicas: 1})
	require.NoError(t, err)
	defer c.Close()
	opts := fast
	// No check runs between the stop and the read: the set learns that
	// the primary is gone from the read alone.
	opts.CheckInterval = time.Minute
	opts.CheckTimeout = 2 * time.Second
	opts.MaxLag = 5 * time.Minute
	opts.MaxLagBytes = 1 << 30
	opts.ConnectTimeout = 10 * time.Second
	s := newSet(t, c, opts)
	sh := c.Shards()[0]
	rep := sh.Replicas[0]
	eventually(t, 10*time.Second, "replica eligible", func() bool { return replicaStats(s, rep.Port()).Eligible })

	require.NoError(t, rep.PauseReplay(ctx))
	t.Cleanup(func() { _ = rep.ResumeReplay(context.Background()) })
	_, lsn, err := s.ExecLSN(ctx, "CREATE TABLE shutdown_read AS SELECT 42 AS v")
	require.NoError(t, err)
	require.NoError(t, sh.Primary.Stop(ctx))
	// Idle pooled connections to the primary are pinged, and so replaced
	// by a refused dial, once idle for a second.
	time.Sleep(1100 * time.Millisecond)
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = rep.ResumeReplay(context.Background())
	}()

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var v int
	row := s.ReadRow(rctx, replica.ReadOptions{MinLSN: lsn}, "SELECT v FROM shutdown_read")
	require.NoError(t, row.Scan(&v), "the replica replays the write 300 ms after the read was sent")
	assert.Equal(t, 42, v)
	assert.Equal(t, replica.RoleReplica, row.Served().Role)
}
