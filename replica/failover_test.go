package replica_test

import (
	"context"
	"errors"
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
	require.NoError(t, err, "start a cluster")
	defer c.Close()
	opts := fast
	opts.ConnectTimeout = time.Second
	s := newSet(t, c, opts)
	mustExec(t, s, "CREATE TABLE acked (id int primary key)")
	mustExec(t, s, "INSERT INTO acked VALUES (1)")
	sh := c.Shards()[0]
	eventually(t, 2*time.Second, "replica caught up", func() bool { return replicaStats(s, sh.Replicas[0].Port()).LagBytes == 0 })

	require.NoError(t, sh.Primary.Stop(ctx), "stop the primary")
	// Writes fail fast, within the caller's deadline.
	wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	_, err = s.Exec(wctx, "INSERT INTO acked VALUES (2)")
	cancel()
	require.ErrorIs(t, err, replica.ErrNoPrimary, "write with the primary stopped")
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "the write waited out its deadline")
	assert.Contains(t, err.Error(), "shard test", "the error does not name the shard")
	// Reads are served by the caught-up replica for at most MaxLag after
	// the primary's last position: this process cannot tell a primary that
	// is down from one it is cut off from, where writes may go on. Then
	// they fail, saying why.
	eventually(t, 5*time.Second, "primary seen down", func() bool { return s.Stats().PrimaryDown })
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

	require.NoError(t, sh.Replicas[0].Promote(ctx), "promote the replica")
	checks := checksUntil(t, s, sh.Replicas[0].Port(), 5*time.Second, "write on the promoted replica", func() bool {
		_, err := s.Exec(ctx, "INSERT INTO acked VALUES (2) ON CONFLICT DO NOTHING")
		return err == nil
	})
	assert.LessOrEqual(t, checks, 2, "checks after the promotion until writes resumed, want within 2 (2 x CheckInterval)")
	var rows int
	require.NoError(t, s.ReadRow(ctx, replica.ReadOptions{Primary: true}, "SELECT count(*) FROM acked").Scan(&rows))
	require.Equal(t, 2, rows, "acknowledged rows after failover")

	// The old primary comes back, still a primary: two primaries, no writes.
	require.NoError(t, sh.Primary.Start(ctx), "restart the old primary")
	eventually(t, 2*time.Second, "split brain detected", func() bool { return s.Stats().SplitBrain })
	_, err = s.Exec(ctx, "INSERT INTO acked VALUES (3)")
	require.ErrorIs(t, err, replica.ErrSplitBrain, "write with two primaries")
}

// With the primary down, a read-your-writes read whose write a replica has
// received but not replayed waits for the replay instead of failing.
func TestReadYourWritesWaitsForReplayWithPrimaryDown(t *testing.T) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 1, Replicas: 1})
	require.NoError(t, err, "start a cluster")
	defer c.Close()
	opts := fast
	opts.MaxLag = 5 * time.Second
	s := newSet(t, c, opts)
	sh := c.Shards()[0]
	mustExec(t, s, "CREATE TABLE seen (id int)")
	require.NoError(t, sh.Replicas[0].PauseReplay(ctx), "pause replay")
	_, lsn, err := s.ExecLSN(ctx, "INSERT INTO seen VALUES (1)")
	require.NoError(t, err, "write")
	require.NoError(t, sh.Primary.Stop(ctx), "stop the primary")
	eventually(t, 2*time.Second, "primary seen down", func() bool { return s.Stats().PrimaryDown })
	go func() {
		time.Sleep(300 * time.Millisecond)
		sh.Replicas[0].ResumeReplay(context.Background())
	}()
	var n int
	row := s.ReadRow(ctx, replica.ReadOptions{MinLSN: lsn}, "SELECT count(*) FROM seen")
	require.NoError(t, row.Scan(&n), "read-your-writes read with the primary down")
	assert.Equal(t, 1, n, "rows read")
	assert.Equal(t, replica.RoleReplica, row.Served().Role, "role that served the read")
}
