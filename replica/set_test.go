package replica_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/replica"
)

func TestReadsGoToReplicasWritesToPrimary(t *testing.T) {
	s := newSet(t, cluster, fast)
	sh := cluster.Shards()[0]
	replicas := ports(sh.Replicas...)
	// A replica behind every primary position the set has seen has no
	// proven lag yet: it enters rotation at its next good checks.
	eventually(t, 2*time.Second, "both replicas eligible", func() bool {
		n := 0
		for _, st := range s.Stats().Nodes {
			if st.Eligible {
				n++
			}
		}
		return n == 2
	})
	seen := map[string]int{}
	for range 200 {
		p, err := readPort(t, s, replica.ReadOptions{})
		require.NoError(t, err)
		name, ok := replicas[p]
		require.True(t, ok, "a read was served by port %d, not by a replica %v", p, replicas)
		seen[name]++
	}
	assert.Len(t, seen, 2, "reads spread as %v, want both replicas used", seen)
	var port int
	_, err := s.Exec(context.Background(), "CREATE TEMP TABLE w(p int)")
	require.NoError(t, err, "CREATE TEMP TABLE")
	err = s.ReadRow(context.Background(), replica.ReadOptions{Primary: true}, "SELECT inet_server_port()").Scan(&port)
	assert.NoError(t, err, "primary read")
	assert.Equal(t, sh.Primary.Port(), port, "port that served the primary read")
	st := s.Stats()
	assert.NotEmpty(t, st.Primary, "Stats().Primary")
	assert.NotContains(t, st.Primary, "pgshard@", "Stats().Primary shows a user")
	// With nothing written any more, every replica catches up: 0 bytes
	// behind, its lag bound no more than the age of the primary's last
	// position, and eligible.
	eventually(t, 2*time.Second, "replicas caught up", func() bool {
		for _, n := range s.Stats().Nodes {
			if n.Role == replica.RoleReplica && (!n.Eligible || n.Lag > fast.MaxLag || n.LagBytes != 0) {
				return false
			}
		}
		return true
	})
}

func TestIdleReplicasStayEligible(t *testing.T) {
	// An idle primary's replicas are never behind it. The bound is wide
	// enough that a check held up by a loaded machine does not count: the
	// point is that idleness never reads as lag.
	opts := fast
	opts.MaxLag = 3 * time.Second
	s := newSet(t, cluster, opts)
	eventually(t, 2*time.Second, "replicas eligible", func() bool {
		for _, n := range s.Stats().Nodes {
			if n.Role == replica.RoleReplica && !n.Eligible {
				return false
			}
		}
		return true
	})
	samples, stale := 0, 0
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range s.Stats().Nodes {
			if n.Role != replica.RoleReplica {
				continue
			}
			samples++
			require.True(t, n.Eligible || n.Reason == replica.ReasonStaleCheck,
				"idle replica %s excluded: %s (lag %v, %d bytes)", n.Addr, n.Reason, n.Lag, n.LagBytes)
			if !n.Eligible {
				stale++ // a check held up by a loaded machine: availability, not lag
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	assert.Less(t, stale, samples/5, "idle replicas out of rotation for stale checks in %d of %d samples", stale, samples)
}

// replicaStats returns the stats of the replica on the given port.
func replicaStats(s *replica.Set, port int) replica.NodeStats {
	for _, n := range s.Stats().Nodes {
		if strings.Contains(n.Addr, ":"+strconv.Itoa(port)+"/") {
			return n
		}
	}
	return replica.NodeStats{}
}

func TestPausedReplicaLeavesRotationByBytes(t *testing.T) {
	ctx := context.Background()
	s := newSet(t, cluster, fast)
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS filler (id serial, pad text)")
	paused := cluster.Shards()[0].Replicas[0]
	require.NoError(t, paused.PauseReplay(ctx), "pause replay")
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			paused.ResumeReplay(context.Background())
		}
	})
	// Write well past MaxLagBytes (256 KiB) of WAL.
	mustExec(t, s, "INSERT INTO filler (pad) SELECT repeat('x', 1000) FROM generate_series(1, 1000)")
	checks := checksUntil(t, s, paused.Port(), 2*time.Second, "paused replica excluded", func() bool {
		return !replicaStats(s, paused.Port()).Eligible
	})
	n := replicaStats(s, paused.Port())
	assert.Equal(t, replica.ReasonLagging, n.Reason, "paused replica's reason")
	assert.Greater(t, n.LagBytes, fast.MaxLagBytes, "paused replica's byte lag, want past MaxLagBytes")
	assert.LessOrEqual(t, checks, 2, "checks of it until it was excluded, want within 2 (2 x CheckInterval)")
	for range 100 {
		p, err := readPort(t, s, replica.ReadOptions{})
		require.NoError(t, err)
		require.NotEqual(t, paused.Port(), p, "a read went to the paused replica")
	}
	require.NoError(t, paused.ResumeReplay(ctx), "resume replay")
	resumed = true
	eventually(t, 5*time.Second, "replica caught up", func() bool { return replicaStats(s, paused.Port()).LagBytes == 0 })
	checks = checksUntil(t, s, paused.Port(), 5*time.Second, "replica re-admitted", func() bool { return replicaStats(s, paused.Port()).Eligible })
	// The check that saw it caught up counts as the first good one.
	limit := 2 + 1
	assert.LessOrEqual(t, checks, limit, "checks after catching up until re-admitted, want within AdmitAfter + 1")
}

func TestPausedReplicaLeavesRotationByTime(t *testing.T) {
	ctx := context.Background()
	s := newSet(t, cluster, fast)
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS small (id serial)")
	paused := cluster.Shards()[0].Replicas[1]
	require.NoError(t, paused.PauseReplay(ctx), "pause replay")
	defer paused.ResumeReplay(context.Background())
	mustExec(t, s, "INSERT INTO small DEFAULT VALUES")
	time.Sleep(fast.MaxLag + 2*fast.CheckInterval)
	n := replicaStats(s, paused.Port())
	require.False(t, n.Eligible, "replica paused past MaxLag is eligible (reason %q, lag %v)", n.Reason, n.Lag)
	require.Equal(t, replica.ReasonLagging, n.Reason, "reason of a replica paused past MaxLag (lag %v)", n.Lag)
	assert.LessOrEqual(t, n.LagBytes, int64(64<<10), "byte lag: the test meant a tiny byte lag")
	assert.Greater(t, n.Lag, fast.MaxLag, "lag, want past MaxLag")
}

func TestReplicaStopDuringReads(t *testing.T) {
	ctx := context.Background()
	s := newSet(t, cluster, fast)
	victim := cluster.Shards()[0].Replicas[0]
	stop := make(chan struct{})
	failed := make(chan error, 1)
	reads := 0
	go func() {
		defer close(failed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := readPort(t, s, replica.ReadOptions{}); err != nil {
				failed <- err
				return
			}
			reads++
		}
	}()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, victim.Stop(ctx), "stop the replica")
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, victim.Start(ctx), "start the replica")
	eventually(t, 10*time.Second, "restarted replica re-admitted", func() bool { return replicaStats(s, victim.Port()).Eligible })
	close(stop)
	require.NoError(t, <-failed, "a read failed while a replica stopped")
	assert.GreaterOrEqual(t, reads, 10, "reads that ran")
}

func TestMinLSNReadsSeeTheirWrite(t *testing.T) {
	ctx := context.Background()
	s := newSet(t, cluster, fast)
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS ryw (id int primary key, v int)")
	mustExec(t, s, "INSERT INTO ryw VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET v = 0")
	reps := cluster.Shards()[0].Replicas
	stop := make(chan struct{})
	toggled := make(chan struct{})
	var toggles atomic.Int64
	go func() {
		defer close(toggled)
		paused := make([]bool, len(reps))
		for i := 0; ; i++ {
			select {
			case <-stop:
				for _, r := range reps {
					r.ResumeReplay(context.Background())
				}
				return
			case <-time.After(200 * time.Millisecond):
			}
			k := i % len(reps)
			if paused[k] {
				reps[k].ResumeReplay(context.Background())
			} else {
				reps[k].PauseReplay(context.Background())
			}
			paused[k] = !paused[k]
			toggles.Add(1)
		}
	}()
	defer func() { close(stop); <-toggled }()
	fromReplica := 0
	// At least 1,000 pairs, and long enough for replay to stop and start
	// on each replica several times.
	for i := 1; i <= 1000 || toggles.Load() < 8; i++ {
		_, lsn, err := s.ExecLSN(ctx, "UPDATE ryw SET v = $1 WHERE id = 1", i)
		require.NoError(t, err, "pair %d: write", i)
		row := s.ReadRow(ctx, replica.ReadOptions{MinLSN: lsn}, "SELECT v FROM ryw WHERE id = 1")
		var v int
		require.NoError(t, row.Scan(&v), "pair %d: read", i)
		require.GreaterOrEqual(t, v, i, "pair %d: read v = %d from %s (%s), older than its own write",
			i, v, row.Served().Node, row.Served().Role)
		if row.Served().Role == replica.RoleReplica {
			fromReplica++
		}
	}
	t.Logf("%d read-your-writes reads served by a replica, across %d pause/resume toggles", fromReplica, toggles.Load())
	assert.NotZero(t, fromReplica, "no read-your-writes read was served by a replica")
}

func TestTxCommitLSN(t *testing.T) {
	ctx := context.Background()
	s := newSet(t, cluster, fast)
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS txt (id int primary key)")
	mustExec(t, s, "DELETE FROM txt")
	lsn, err := s.Tx(ctx, pgxTxOptions(), func(tx pgxTx) error {
		_, err := tx.Exec(ctx, "INSERT INTO txt VALUES (1)")
		return err
	})
	require.NoError(t, err, "Tx")
	require.NotZero(t, lsn, "Tx's commit LSN")
	var n int
	require.NoError(t, s.ReadRow(ctx, replica.ReadOptions{MinLSN: lsn}, "SELECT count(*) FROM txt").Scan(&n),
		"read at the commit LSN")
	require.Equal(t, 1, n, "rows read at the commit LSN")
	// A failed statement inside fn that fn swallows: COMMIT answers ROLLBACK.
	_, err = s.Tx(ctx, pgxTxOptions(), func(tx pgxTx) error {
		tx.Exec(ctx, "INSERT INTO txt VALUES (1)") // duplicate key, ignored
		return nil
	})
	require.Error(t, err, "Tx whose transaction failed inside reported success")
	wantErr := errors.New("boom")
	_, err = s.Tx(ctx, pgxTxOptions(), func(tx pgxTx) error {
		tx.Exec(ctx, "INSERT INTO txt VALUES (2)")
		return wantErr
	})
	require.ErrorIs(t, err, wantErr, "Tx error, want fn's error")
	require.NoError(t, s.ReadRow(ctx, replica.ReadOptions{Primary: true}, "SELECT count(*) FROM txt").Scan(&n),
		"read after a rolled-back Tx")
	require.Equal(t, 1, n, "rows after a rolled-back Tx")
	// ExecLSN with a failing statement reports the server's error.
	_, _, err = s.ExecLSN(ctx, "INSERT INTO txt VALUES ($1)", 1)
	require.Error(t, err, "ExecLSN of a duplicate key succeeded")
	_, lsn, err = s.ExecLSN(ctx, "INSERT INTO txt VALUES ($1)", 3)
	require.NoError(t, err, "ExecLSN after a failure")
	require.NotZero(t, lsn, "ExecLSN's LSN after a failure")
}
