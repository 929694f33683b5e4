package replica_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/replica"
)

// pauseAll pauses replay on every replica and writes, so that no replica
// is eligible; the returned function resumes them.
func pauseAll(t *testing.T, s *replica.Set) {
	t.Helper()
	ctx := context.Background()
	reps := cluster.Shards()[0].Replicas
	for _, r := range reps {
		require.NoError(t, r.PauseReplay(ctx), "pause replay on %s", r.Name())
	}
	t.Cleanup(func() {
		for _, r := range reps {
			r.ResumeReplay(context.Background())
		}
	})
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS small (id serial)")
	mustExec(t, s, "INSERT INTO small DEFAULT VALUES")
	eventually(t, 3*time.Second, "every replica excluded", func() bool {
		for _, n := range s.Stats().Nodes {
			if n.Eligible {
				return false
			}
		}
		return true
	})
}

func TestFallbackPolicies(t *testing.T) {
	ctx := context.Background()
	errOpts := fast
	errOpts.Fallback = replica.FallbackError
	strict := newSet(t, cluster, errOpts)
	capOpts := fast
	capOpts.MaxFallbackRate = 5
	capped := newSet(t, cluster, capOpts)
	pauseAll(t, strict)
	eventually(t, 3*time.Second, "capped set sees no eligible replica", func() bool {
		for _, n := range capped.Stats().Nodes {
			if n.Eligible {
				return false
			}
		}
		return true
	})

	_, err := readPort(t, strict, replica.ReadOptions{})
	assert.ErrorIs(t, err, replica.ErrNoReplica, "FallbackError read with every replica lagging")
	p, err := readPort(t, strict, replica.ReadOptions{Primary: true})
	assert.NoError(t, err, "explicit primary read under FallbackError")
	assert.Equal(t, cluster.Shards()[0].Primary.Port(), p, "port that served an explicit primary read under FallbackError")

	served, refused := 0, 0
	for range 50 {
		p, err := readPort(t, capped, replica.ReadOptions{})
		if errors.Is(err, replica.ErrNoReplica) {
			refused++
			continue
		}
		require.NoError(t, err)
		require.Equal(t, cluster.Shards()[0].Primary.Port(), p, "port that served a read with every replica lagging")
		served++
	}
	// A burst of 50 against a cap of 5/s: the bucket's burst (5) and a few
	// refills pass, the rest are refused.
	assert.GreaterOrEqual(t, served, 5, "capped fallback: reads served by the primary (%d refused); want about 5", refused)
	assert.LessOrEqual(t, served, 15, "capped fallback: reads served by the primary (%d refused); want about 5", refused)
	assert.NotZero(t, refused, "capped fallback: reads refused (%d served by the primary)", served)
	st := capped.Stats()
	assert.Equal(t, uint64(refused), st.RejectedReads, "Stats().RejectedReads")
	var fallbacks uint64
	for _, n := range st.Nodes {
		fallbacks += n.Fallbacks
	}
	assert.GreaterOrEqual(t, fallbacks, uint64(served), "fallback reads counted, want at least those served")
	_ = ctx
}

// syncBuffer is a log destination safe for the checker's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Ejections are logged once, not every tick, and no credential reaches a
// log line, an error or the stats.
func TestLogsOnceAndNoCredentials(t *testing.T) {
	var logs syncBuffer
	opts := fast
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := newSet(t, cluster, opts)
	paused := cluster.Shards()[0].Replicas[0]
	require.NoError(t, paused.PauseReplay(context.Background()), "pause replay")
	defer paused.ResumeReplay(context.Background())
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS small (id serial)")
	mustExec(t, s, "INSERT INTO small DEFAULT VALUES")
	eventually(t, 3*time.Second, "replica ejected", func() bool { return !replicaStats(s, paused.Port()).Eligible })
	time.Sleep(10 * fast.CheckInterval) // ten more ticks while it stays out
	assert.Equal(t, 1, strings.Count(logs.String(), "replica ejected"),
		"%q logged over many ticks, want once:\n%s", "replica ejected", logs.String())

	// A password in every DSN, and a node that refuses connections.
	const secret = "pgshard" // the cluster's password, in every DSN given to the set
	bad, err := replica.New(context.Background(), replica.Config{
		Name:     "creds",
		Primary:  cluster.Shards()[0].Primary.DSN(),
		Replicas: []string{"postgres://pgshard:" + secret + "-other@127.0.0.1:1/pgshard?connect_timeout=1"},
		Options:  opts,
	})
	require.NoError(t, err, "a set with a node that refuses connections")
	defer bad.Close()
	var texts []string
	for _, n := range bad.Stats().Nodes {
		texts = append(texts, n.Addr, n.Error)
	}
	texts = append(texts, logs.String())
	_, err = replica.New(context.Background(), replica.Config{Name: "x", Primary: "postgres://u:" + secret + "@127.0.0.1:notaport/db"})
	texts = append(texts, err.Error())
	for _, text := range texts {
		assert.NotContains(t, text, secret+"-other", "a password appears")
		assert.NotContains(t, text, ":"+secret+"@", "a password appears")
	}
}

// With MaxWait, a read-your-writes read waits for a replica to replay the
// write rather than going to the primary.
func TestMinLSNWaitsForReplay(t *testing.T) {
	ctx := context.Background()
	opts := fast
	opts.MaxWait = 2 * time.Second
	opts.MaxLag = 5 * time.Second // the paused replicas stay eligible, only behind
	s := newSet(t, cluster, opts)
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS small (id serial)")
	reps := cluster.Shards()[0].Replicas
	for _, r := range reps {
		require.NoError(t, r.PauseReplay(ctx), "pause replay on %s", r.Name())
	}
	resumed := false
	defer func() {
		if !resumed {
			for _, r := range reps {
				r.ResumeReplay(context.Background())
			}
		}
	}()
	_, lsn, err := s.ExecLSN(ctx, "INSERT INTO small DEFAULT VALUES")
	require.NoError(t, err, "write")
	go func() {
		time.Sleep(100 * time.Millisecond)
		for _, r := range reps {
			r.ResumeReplay(context.Background())
		}
	}()
	resumed = true
	row := s.ReadRow(ctx, replica.ReadOptions{MinLSN: lsn}, "SELECT count(*) FROM small")
	var n int
	require.NoError(t, row.Scan(&n), "read-your-writes read")
	// Replay paused for 100 ms keeps the replicas within MaxLag, so they
	// stay eligible but behind: the read probes one and waits.
	assert.Equal(t, replica.RoleReplica, row.Served().Role, "role that served the read, want a replica that waited for replay")
}
