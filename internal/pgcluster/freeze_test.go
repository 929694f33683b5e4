package pgcluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

// silence is how long a frozen or blackholed node must stay silent for a test to call
// it so; long enough that a loaded machine answers a live node within it.
const silence = 500 * time.Millisecond

// queryAsync runs SELECT 1 on conn in the background; the channel yields its error.
func queryAsync(conn *pgx.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		var one int
		done <- conn.QueryRow(context.Background(), "SELECT 1").Scan(&one)
	}()
	return done
}

// requireSilent fails unless done yields nothing for silence.
func requireSilent(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		require.Failf(t, "answered", "%s answered (err %v) within %v", what, err, silence)
	case <-time.After(silence):
	}
}

// requireAnswers fails unless done yields nil within the test context.
func requireAnswers(t *testing.T, ctx context.Context, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		require.NoError(t, err, what)
	case <-ctx.Done():
		require.Fail(t, "no answer", "%s still has no answer", what)
	}
}

// connectWithin tries to connect within d.
func connectWithin(ctx context.Context, dsn string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		_ = conn.Close(context.Background())
	}
	return err
}

// stoppedState returns how many of pids the kernel shows stopped, and how many exist.
func stoppedState(t *testing.T, pids []int) (stopped, all int) {
	t.Helper()
	for _, pid := range pids {
		switch procState(pid) {
		case 0:
		case 'T':
			stopped++
			all++
		default:
			all++
		}
	}
	return stopped, all
}

func TestFreezeAndThaw(t *testing.T) {
	ctx := testContext(t)
	sh := cluster.Shards()[1]
	node := sh.Replicas[0]
	conn := connect(t, node.DSN())
	other := connect(t, sh.Primary.DSN())

	require.NoError(t, node.FreezeForTest(ctx, t))
	require.True(t, node.Frozen(), "Frozen() after Freeze")
	require.NoError(t, node.Freeze(ctx), "Freeze of a frozen node")
	if cluster.Backend() == pgcluster.BackendLocal {
		stopped, all := stoppedState(t, withChildren(t, []int{node.PID()}))
		assert.Greater(t, all, 2, "postmaster and its processes")
		assert.Equal(t, all, stopped, "processes stopped after Freeze")
	}

	pending := queryAsync(conn)
	requireSilent(t, pending, "a frozen node's open session")
	assert.Error(t, connectWithin(ctx, node.DSN(), silence), "a new connection to a frozen node")
	var one int
	require.NoError(t, other.QueryRow(ctx, "SELECT 1").Scan(&one), "another node, while one is frozen")

	require.NoError(t, node.Thaw(ctx))
	assert.False(t, node.Frozen(), "Frozen() after Thaw")
	requireAnswers(t, ctx, pending, "the query sent while frozen")
	require.NoError(t, connectWithin(ctx, node.DSN(), 10*time.Second), "a new connection after Thaw")
	require.NoError(t, node.Thaw(ctx), "Thaw of a node that is not frozen")
}

func TestFreezeForTestThawsAtCleanup(t *testing.T) {
	ctx := testContext(t)
	node := cluster.Shards()[0].Replicas[0]
	var pids []int
	t.Run("freezes", func(t *testing.T) {
		require.NoError(t, node.FreezeForTest(ctx, t))
		require.True(t, node.Frozen())
		if cluster.Backend() == pgcluster.BackendLocal {
			pids = withChildren(t, []int{node.PID()})
		}
	})
	assert.False(t, node.Frozen(), "Frozen() after the test that froze it ended")
	stopped, _ := stoppedState(t, pids)
	assert.Zero(t, stopped, "processes still stopped after the test that froze them ended")
	require.NoError(t, connectWithin(ctx, node.DSN(), 10*time.Second))
}

// TestFrozenNodesNeverLeftBehind checks that Stop thaws a frozen node before it stops it,
// and that Close thaws, closes the proxies and stops every process.
func TestFrozenNodesNeverLeftBehind(t *testing.T) {
	ctx := testContext(t)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Replicas: 1})
	require.NoError(t, err)
	defer c.Close()
	primary, replica := c.Shards()[0].Primary, c.Shards()[0].Replicas[0]

	require.NoError(t, primary.Freeze(ctx))
	require.NoError(t, primary.Stop(ctx), "Stop of a frozen node")
	assert.False(t, primary.Frozen(), "Frozen() after Stop")
	assert.Error(t, primary.Freeze(ctx), "Freeze of a stopped node")
	require.NoError(t, primary.Start(ctx))

	var pids []int
	if c.Backend() == pgcluster.BackendLocal {
		pids = withChildren(t, []int{primary.PID(), replica.PID()})
	}
	p, err := primary.Proxy(ctx)
	require.NoError(t, err)
	require.NoError(t, connectWithin(ctx, p.DSN(), 10*time.Second), "through the proxy")
	require.NoError(t, primary.Freeze(ctx))
	require.NoError(t, replica.Freeze(ctx))

	began := time.Now()
	require.NoError(t, c.Close())
	t.Logf("Close of a cluster with every node frozen took %v", time.Since(began))
	assert.Empty(t, remaining(pids), "processes left after Close")
	assert.Error(t, connectWithin(ctx, p.DSN(), 5*time.Second), "the proxy after Close")
	_, err = primary.Proxy(ctx)
	assert.ErrorIs(t, err, pgcluster.ErrClosed, "Proxy after Close")
}
