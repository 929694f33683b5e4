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
		if err != nil {
			t.Fatal(err)
		}
		name, ok := replicas[p]
		if !ok {
			t.Fatalf("a read was served by port %d, not by a replica %v", p, replicas)
		}
		seen[name]++
	}
	if len(seen) != 2 {
		t.Errorf("reads spread as %v, want both replicas used", seen)
	}
	var port int
	if _, err := s.Exec(context.Background(), "CREATE TEMP TABLE w(p int)"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadRow(context.Background(), replica.ReadOptions{Primary: true}, "SELECT inet_server_port()").Scan(&port); err != nil || port != sh.Primary.Port() {
		t.Errorf("primary read served by port %d (%v), want the primary's %d", port, err, sh.Primary.Port())
	}
	st := s.Stats()
	if st.Primary == "" || strings.Contains(st.Primary, "pgshard@") {
		t.Errorf("Stats().Primary = %q", st.Primary)
	}
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
			switch {
			case n.Eligible:
			case n.Reason == replica.ReasonStaleCheck:
				stale++ // a check held up by a loaded machine: availability, not lag
			default:
				t.Fatalf("idle replica %s excluded: %s (lag %v, %d bytes)", n.Addr, n.Reason, n.Lag, n.LagBytes)
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
	if err := paused.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
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
	if n := replicaStats(s, paused.Port()); n.Reason != replica.ReasonLagging || n.LagBytes <= fast.MaxLagBytes {
		t.Errorf("paused replica: reason %q, lag %d bytes; want lagging past %d", n.Reason, n.LagBytes, fast.MaxLagBytes)
	}
	if checks > 2 {
		t.Errorf("excluded after %d checks of it, want within 2 (2 x CheckInterval)", checks)
	}
	for range 100 {
		p, err := readPort(t, s, replica.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p == paused.Port() {
			t.Fatal("a read went to the paused replica")
		}
	}
	if err := paused.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	resumed = true
	eventually(t, 5*time.Second, "replica caught up", func() bool { return replicaStats(s, paused.Port()).LagBytes == 0 })
	checks = checksUntil(t, s, paused.Port(), 5*time.Second, "replica re-admitted", func() bool { return replicaStats(s, paused.Port()).Eligible })
	// The check that saw it caught up counts as the first good one.
	if limit := 2 + 1; checks > limit {
		t.Errorf("re-admitted %d checks after catching up, want within AdmitAfter + 1 = %d", checks, limit)
	}
}

func TestPausedReplicaLeavesRotationByTime(t *testing.T) {
	ctx := context.Background()
	s := newSet(t, cluster, fast)
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS small (id serial)")
	paused := cluster.Shards()[0].Replicas[1]
	if err := paused.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	defer paused.ResumeReplay(context.Background())
	mustExec(t, s, "INSERT INTO small DEFAULT VALUES")
	time.Sleep(fast.MaxLag + 2*fast.CheckInterval)
	n := replicaStats(s, paused.Port())
	if n.Eligible || n.Reason != replica.ReasonLagging {
		t.Fatalf("replica paused past MaxLag: eligible %v, reason %q, lag %v", n.Eligible, n.Reason, n.Lag)
	}
	if n.LagBytes > 64<<10 {
		t.Errorf("byte lag %d: the test meant a tiny byte lag", n.LagBytes)
	}
	if n.Lag <= fast.MaxLag {
		t.Errorf("lag %v, want past MaxLag %v", n.Lag, fast.MaxLag)
	}
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
	if err := victim.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := victim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "restarted replica re-admitted", func() bool { return replicaStats(s, victim.Port()).Eligible })
	close(stop)
	if err := <-failed; err != nil {
		t.Fatalf("a read failed while a replica stopped: %v", err)
	}
	if reads < 10 {
		t.Errorf("only %d reads ran", reads)
	}
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
		if err != nil {
			t.Fatal(err)
		}
		row := s.ReadRow(ctx, replica.ReadOptions{MinLSN: lsn}, "SELECT v FROM ryw WHERE id = 1")
		var v int
		if err := row.Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v < i {
			t.Fatalf("pair %d: read v = %d from %s (%s), older than its own write", i, v, row.Served().Node, row.Served().Role)
		}
		if row.Served().Role == replica.RoleReplica {
			fromReplica++
		}
	}
	t.Logf("%d read-your-writes reads served by a replica, across %d pause/resume toggles", fromReplica, toggles.Load())
	if fromReplica == 0 {
		t.Error("no read-your-writes read was served by a replica")
	}
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
	if err != nil || lsn == 0 {
		t.Fatalf("Tx = %s, %v", lsn, err)
	}
	var n int
	if err := s.ReadRow(ctx, replica.ReadOptions{MinLSN: lsn}, "SELECT count(*) FROM txt").Scan(&n); err != nil || n != 1 {
		t.Fatalf("read at the commit LSN: %d rows, %v", n, err)
	}
	// A failed statement inside fn that fn swallows: COMMIT answers ROLLBACK.
	_, err = s.Tx(ctx, pgxTxOptions(), func(tx pgxTx) error {
		tx.Exec(ctx, "INSERT INTO txt VALUES (1)") // duplicate key, ignored
		return nil
	})
	if err == nil {
		t.Fatal("Tx whose transaction failed inside reported success")
	}
	wantErr := errors.New("boom")
	if _, err := s.Tx(ctx, pgxTxOptions(), func(tx pgxTx) error {
		tx.Exec(ctx, "INSERT INTO txt VALUES (2)")
		return wantErr
	}); !errors.Is(err, wantErr) {
		t.Fatalf("Tx error = %v, want fn's error", err)
	}
	if err := s.ReadRow(ctx, replica.ReadOptions{Primary: true}, "SELECT count(*) FROM txt").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after a rolled-back Tx: %d rows, %v; want 1", n, err)
	}
	// ExecLSN with a failing statement reports the server's error.
	if _, _, err := s.ExecLSN(ctx, "INSERT INTO txt VALUES ($1)", 1); err == nil {
		t.Fatal("ExecLSN of a duplicate key succeeded")
	}
	if _, lsn, err := s.ExecLSN(ctx, "INSERT INTO txt VALUES ($1)", 3); err != nil || lsn == 0 {
		t.Fatalf("ExecLSN after a failure: %s, %v", lsn, err)
	}
}
