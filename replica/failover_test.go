package replica_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
)

// TestPrimaryLossAndPromotion stops the primary of a cluster of its own,
// then promotes its replica.
func TestPrimaryLossAndPromotion(t *testing.T) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 1, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := fast
	opts.ConnectTimeout = time.Second
	s := newSet(t, c, opts)
	mustExec(t, s, "CREATE TABLE acked (id int primary key)")
	mustExec(t, s, "INSERT INTO acked VALUES (1)")
	sh := c.Shards()[0]
	eventually(t, 2*time.Second, "replica caught up", func() bool { return replicaStats(s, sh.Replicas[0].Port()).LagBytes == 0 })

	if err := sh.Primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Writes fail fast, within the caller's deadline.
	wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	start := time.Now()
	_, err = s.Exec(wctx, "INSERT INTO acked VALUES (2)")
	cancel()
	if !errors.Is(err, replica.ErrNoPrimary) {
		t.Fatalf("write with the primary stopped: %v, want ErrNoPrimary", err)
	}
	if took := time.Since(start); took > 2*time.Second { // the 1.5 s deadline, and room for a loaded machine
		t.Errorf("write failed after %v, past its deadline", took)
	}
	if want := "shard test"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the shard", err)
	}
	// Reads are served by the caught-up replica for at most MaxLag after
	// the primary's last position: this process cannot tell a primary that
	// is down from one it is cut off from, where writes may go on. Then
	// they fail, saying why.
	eventually(t, time.Second, "primary seen down", func() bool { return s.Stats().PrimaryDown })
	eventually(t, opts.MaxLag+time.Second, "replica reads refused", func() bool {
		_, err := readPort(t, s, replica.ReadOptions{})
		return errors.Is(err, replica.ErrNoReplica)
	})
	_, err = readPort(t, s, replica.ReadOptions{})
	require.ErrorIs(t, err, replica.ErrNoReplica)
	require.ErrorIs(t, err, replica.ErrNoPrimary)
	require.Contains(t, err.Error(), "lagging", "the error says why the replica may not serve")
	n := replicaStats(s, sh.Replicas[0].Port())
	assert.False(t, n.Eligible)
	assert.Equal(t, replica.ReasonLagging, n.Reason)

	if err := sh.Replicas[0].Promote(ctx); err != nil {
		t.Fatal(err)
	}
	checks := checksUntil(t, s, sh.Replicas[0].Port(), 5*time.Second, "write on the promoted replica", func() bool {
		_, err := s.Exec(ctx, "INSERT INTO acked VALUES (2) ON CONFLICT DO NOTHING")
		return err == nil
	})
	if checks > 2 {
		t.Errorf("writes resumed %d checks after the promotion, want within 2 (2 x CheckInterval)", checks)
	}
	var rows int
	require.NoError(t, s.ReadRow(ctx, replica.ReadOptions{Primary: true}, "SELECT count(*) FROM acked").Scan(&rows))
	require.Equal(t, 2, rows, "acknowledged rows after failover")

	// The old primary comes back, still a primary: two primaries, no writes.
	if err := sh.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "split brain detected", func() bool { return s.Stats().SplitBrain })
	if _, err := s.Exec(ctx, "INSERT INTO acked VALUES (3)"); !errors.Is(err, replica.ErrSplitBrain) {
		t.Fatalf("write with two primaries: %v, want ErrSplitBrain", err)
	}
}

// With the primary down, a read-your-writes read whose write a replica has
// received but not replayed waits for the replay instead of failing.
func TestReadYourWritesWaitsForReplayWithPrimaryDown(t *testing.T) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 1, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := fast
	opts.MaxLag = 5 * time.Second
	s := newSet(t, c, opts)
	sh := c.Shards()[0]
	mustExec(t, s, "CREATE TABLE seen (id int)")
	if err := sh.Replicas[0].PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	_, lsn, err := s.ExecLSN(ctx, "INSERT INTO seen VALUES (1)")
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "primary seen down", func() bool { return s.Stats().PrimaryDown })
	go func() {
		time.Sleep(300 * time.Millisecond)
		sh.Replicas[0].ResumeReplay(context.Background())
	}()
	var n int
	row := s.ReadRow(ctx, replica.ReadOptions{MinLSN: lsn}, "SELECT count(*) FROM seen")
	if err := row.Scan(&n); err != nil {
		t.Fatalf("read-your-writes read with the primary down: %v", err)
	}
	if n != 1 || row.Served().Role != replica.RoleReplica {
		t.Errorf("read %d rows from the %s, want 1 from the replica", n, row.Served().Role)
	}
}
