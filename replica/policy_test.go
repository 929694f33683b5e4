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

	"github.com/pgshard/pgshard/replica"
)

// pauseAll pauses replay on every replica and writes, so that no replica
// is eligible; the returned function resumes them.
func pauseAll(t *testing.T, s *replica.Set) {
	t.Helper()
	ctx := context.Background()
	reps := cluster.Shards()[0].Replicas
	for _, r := range reps {
		if err := r.PauseReplay(ctx); err != nil {
			t.Fatal(err)
		}
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

	if _, err := readPort(t, strict, replica.ReadOptions{}); !errors.Is(err, replica.ErrNoReplica) {
		t.Errorf("FallbackError read with every replica lagging: %v, want ErrNoReplica", err)
	}
	if p, err := readPort(t, strict, replica.ReadOptions{Primary: true}); err != nil || p != cluster.Shards()[0].Primary.Port() {
		t.Errorf("explicit primary read under FallbackError: port %d, %v", p, err)
	}

	served, refused := 0, 0
	for range 50 {
		p, err := readPort(t, capped, replica.ReadOptions{})
		switch {
		case errors.Is(err, replica.ErrNoReplica):
			refused++
		case err != nil:
			t.Fatal(err)
		case p != cluster.Shards()[0].Primary.Port():
			t.Fatalf("read served by port %d with every replica lagging", p)
		default:
			served++
		}
	}
	// A burst of 50 against a cap of 5/s: the bucket's burst (5) and a few
	// refills pass, the rest are refused.
	if served < 5 || served > 15 || refused == 0 {
		t.Errorf("capped fallback: %d served by the primary, %d refused; want about 5 served", served, refused)
	}
	st := capped.Stats()
	if st.RejectedReads != uint64(refused) {
		t.Errorf("Stats().RejectedReads = %d, want %d", st.RejectedReads, refused)
	}
	var fallbacks uint64
	for _, n := range st.Nodes {
		fallbacks += n.Fallbacks
	}
	if fallbacks < uint64(served) {
		t.Errorf("fallback reads counted %d, want at least %d", fallbacks, served)
	}
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
	if err := paused.PauseReplay(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer paused.ResumeReplay(context.Background())
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS small (id serial)")
	mustExec(t, s, "INSERT INTO small DEFAULT VALUES")
	eventually(t, 3*time.Second, "replica ejected", func() bool { return !replicaStats(s, paused.Port()).Eligible })
	time.Sleep(10 * fast.CheckInterval) // ten more ticks while it stays out
	if n := strings.Count(logs.String(), "replica ejected"); n != 1 {
		t.Errorf("%q logged %d times over many ticks, want once:\n%s", "replica ejected", n, logs.String())
	}

	// A password in every DSN, and a node that refuses connections.
	const secret = "pgshard" // the cluster's password, in every DSN given to the set
	bad, err := replica.New(context.Background(), replica.Config{
		Name:     "creds",
		Primary:  cluster.Shards()[0].Primary.DSN(),
		Replicas: []string{"postgres://pgshard:" + secret + "-other@127.0.0.1:1/pgshard?connect_timeout=1"},
		Options:  opts,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	var texts []string
	for _, n := range bad.Stats().Nodes {
		texts = append(texts, n.Addr, n.Error)
	}
	texts = append(texts, logs.String())
	_, err = replica.New(context.Background(), replica.Config{Name: "x", Primary: "postgres://u:" + secret + "@127.0.0.1:notaport/db"})
	texts = append(texts, err.Error())
	for _, text := range texts {
		if strings.Contains(text, secret+"-other") || strings.Contains(text, ":"+secret+"@") {
			t.Errorf("a password appears in %q", text)
		}
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
		if err := r.PauseReplay(ctx); err != nil {
			t.Fatal(err)
		}
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
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		for _, r := range reps {
			r.ResumeReplay(context.Background())
		}
	}()
	resumed = true
	row := s.ReadRow(ctx, replica.ReadOptions{MinLSN: lsn}, "SELECT count(*) FROM small")
	var n int
	if err := row.Scan(&n); err != nil {
		t.Fatal(err)
	}
	// Replay paused for 100 ms keeps the replicas within MaxLag, so they
	// stay eligible but behind: the read probes one and waits.
	if row.Served().Role != replica.RoleReplica {
		t.Errorf("read served by the %s, want a replica that waited for replay", row.Served().Role)
	}
}
