package replica_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
)

// cluster is one shard with two streaming replicas, shared by the tests
// that do not change its topology. Tests that pause or stop a node put it
// back before they end.
var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 1, Replicas: 2}, &cluster))
}

// fast are options that make the tests quick: a short interval and bounds
// small enough to cross with a few writes.
var fast = replica.Options{
	CheckInterval:  50 * time.Millisecond,
	CheckTimeout:   500 * time.Millisecond, // the race detector and a shared machine slow checks down
	ConnectTimeout: 10 * time.Second,
	MaxLag:         300 * time.Millisecond,
	MaxLagBytes:    256 << 10,
}

func newSet(t testing.TB, c *pgcluster.Cluster, opts replica.Options) *replica.Set {
	t.Helper()
	sh := c.Shards()[0]
	var reps []string
	for _, r := range sh.Replicas {
		reps = append(reps, r.DSN())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := replica.New(ctx, replica.Config{Name: "test", Primary: sh.Primary.DSN(), Replicas: reps, Options: opts})
	require.NoError(t, err, "replica.New")
	t.Cleanup(s.Close)
	return s
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			require.Fail(t, what+": not within "+timeout.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// port asks which server answered.
func readPort(t testing.TB, s *replica.Set, o replica.ReadOptions) (int, error) {
	t.Helper()
	var port int
	err := s.ReadRow(context.Background(), o, "SELECT inet_server_port()").Scan(&port)
	return port, err
}

func ports(nodes ...*pgcluster.Node) map[int]string {
	m := map[int]string{}
	for _, n := range nodes {
		m[n.Port()] = n.Name()
	}
	return m
}

func mustExec(t testing.TB, s *replica.Set, sql string, args ...any) {
	t.Helper()
	_, err := s.Exec(context.Background(), sql, args...)
	require.NoError(t, err, "%s", sql)
}

// checksUntil polls until cond holds, and counts the checks of the node on
// port that finished meanwhile. Bounds such as "within two checks" are
// asserted as counts, not as wall time: this machine is shared, and a
// slow tick stretches the time but not the count.
func checksUntil(t testing.TB, s *replica.Set, port int, timeout time.Duration, what string, cond func() bool) int {
	t.Helper()
	seen := map[time.Time]bool{}
	start := replicaStats(s, port).LastCheck
	eventually(t, timeout, what, func() bool {
		if c := replicaStats(s, port).LastCheck; c.After(start) {
			seen[c] = true
		}
		return cond()
	})
	if c := replicaStats(s, port).LastCheck; c.After(start) {
		seen[c] = true
	}
	return len(seen)
}
