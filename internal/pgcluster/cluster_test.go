package pgcluster_test

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

func TestTopology(t *testing.T) {
	shards := cluster.Shards()
	if len(shards) != 2 {
		t.Fatalf("len(Shards()) = %d, want 2", len(shards))
	}
	var names []string
	for i, sh := range shards {
		wantShard := "shard" + string(rune('0'+i))
		if sh.Name != wantShard || sh.Primary == nil || len(sh.Replicas) != 1 {
			t.Fatalf("Shards()[%d] = %+v, want %s with a primary and 1 replica", i, sh, wantShard)
		}
		for _, n := range append([]*pgcluster.Node{sh.Primary}, sh.Replicas...) {
			names = append(names, n.Name())
			if n.Shard() != sh.Name {
				t.Errorf("%s.Shard() = %q, want %q", n.Name(), n.Shard(), sh.Name)
			}
		}
	}
	want := "shard0-primary shard0-replica1 shard1-primary shard1-replica1"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("node names = %q, want %q", got, want)
	}
	var fromNodes []string
	for _, n := range cluster.Nodes() {
		fromNodes = append(fromNodes, n.Name())
	}
	if got := strings.Join(fromNodes, " "); got != want {
		t.Errorf("Nodes() = %q, want %q", got, want)
	}
	n, err := cluster.Node("shard1-replica1")
	if err != nil || n != shards[1].Replicas[0] {
		t.Errorf("Node(shard1-replica1) = %v, %v; want shard 1's replica", n, err)
	}
	if _, err := cluster.Node("shard9-primary"); !errors.Is(err, pgcluster.ErrUnknownNode) {
		t.Errorf("Node(shard9-primary) error = %v, want ErrUnknownNode", err)
	}
	if cluster.Backend() != pgcluster.BackendLocal && cluster.Backend() != pgcluster.BackendDocker {
		t.Errorf("Backend() = %q", cluster.Backend())
	}
}

func TestNodeDSN(t *testing.T) {
	n := cluster.Shards()[0].Primary
	u, err := url.Parse(n.DSN())
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	got := []string{u.Scheme, u.User.Username(), pw, u.Hostname(), u.Port(), u.Path, u.RawQuery}
	want := []string{"postgres", "pgshard", "pgshard", "127.0.0.1", itoa(n.Port()), "/pgshard", "sslmode=disable"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("DSN() parts = %q, want %q", got, want)
	}
	if s := n.String(); strings.Contains(s, ":pgshard@") || !strings.Contains(s, "shard0-primary") {
		t.Errorf("String() = %q: want the name and no password", s)
	}
	conn := connect(t, n.SuperDSN())
	if super := queryInt(t, conn, "SELECT count(*) FROM pg_roles WHERE rolname = current_user AND rolsuper"); super != 1 {
		t.Errorf("SuperDSN() connects a non-superuser")
	}
	conn = connect(t, n.DSN())
	if super := queryInt(t, conn, "SELECT count(*) FROM pg_roles WHERE rolname = current_user AND rolsuper"); super != 0 {
		t.Errorf("DSN() connects a superuser")
	}
	exec(t, conn, "CREATE TABLE dsn_owner_can_create (id int)")
}

func TestReplicaSeesPrimaryWrite(t *testing.T) {
	ctx := testContext(t)
	for _, sh := range cluster.Shards() {
		p := connect(t, sh.Primary.DSN())
		exec(t, p, "CREATE TABLE seen_on_replica (id int)")
		exec(t, p, "INSERT INTO seen_on_replica VALUES (42)")
		r := sh.Replicas[0]
		if err := r.WaitCaughtUp(ctx, sh.Primary); err != nil {
			t.Fatal(err)
		}
		rc := connect(t, r.DSN())
		if got := queryInt(t, rc, "SELECT sum(id) FROM seen_on_replica"); got != 42 {
			t.Errorf("%s: sum(id) = %d, want 42", r.Name(), got)
		}
		if got := queryInt(t, rc, "SELECT pg_is_in_recovery()::int"); got != 1 {
			t.Errorf("%s: pg_is_in_recovery() = %d, want 1", r.Name(), got)
		}
	}
}

// TestClose checks that Close stops every process of the cluster and, with a DataDir,
// keeps the data; and without one, removes it.
func TestClose(t *testing.T) {
	ctx := testContext(t)
	// The servers' owner (postgres, when the test runs as root) must reach the data
	// folder, but the testing package makes t.TempDir() and its parent private.
	base := t.TempDir()
	for _, d := range []string{base, filepath.Dir(base)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(base, "data")
	for _, tc := range []struct {
		name    string
		dataDir string
	}{{"temporary", ""}, {"kept", dir}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := pgcluster.Start(ctx, pgcluster.Options{Replicas: 1, DataDir: tc.dataDir})
			if err != nil {
				t.Fatal(err)
			}
			if c.Backend() != pgcluster.BackendLocal {
				_ = c.Close()
				t.Skip("process checks need the local backend")
			}
			var pids []int
			for _, n := range c.Nodes() {
				if n.PID() == 0 {
					t.Errorf("%s: PID() = 0 while running", n.Name())
				}
				pids = append(pids, n.PID())
			}
			var dataDir string
			conn := connect(t, c.Nodes()[0].SuperDSN())
			if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir); err != nil {
				t.Fatal(err)
			}
			all := withChildren(t, pids)
			if len(all) < 2*len(pids) {
				t.Fatalf("found %d server processes, want a few per postmaster", len(all))
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if left := remaining(all); len(left) > 0 {
				t.Errorf("processes left after Close: %v", left)
			}
			_, err = os.Stat(filepath.Join(dataDir, "PG_VERSION"))
			if kept := err == nil; kept != (tc.dataDir != "") {
				t.Errorf("after Close, %s exists = %v, want %v", dataDir, kept, tc.dataDir != "")
			}
			if err := c.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestStartFailureShowsServerLog(t *testing.T) {
	ctx := testContext(t)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Settings: map[string]string{"shared_buffers": "lots"}})
	if err == nil {
		_ = c.Close()
		t.Fatal("Start with shared_buffers = lots succeeded")
	}
	var nodeErr *pgcluster.NodeError
	if !errors.As(err, &nodeErr) || nodeErr.Node != "shard0-primary" {
		t.Fatalf("error = %v, want a NodeError for shard0-primary", err)
	}
	if !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers"`) {
		t.Errorf("error does not quote the server log:\n%v", err)
	}
}

// TestDataDirReuse starts a cluster on a kept DataDir, writes, stops it,
// and starts it again from the same folder: the data is there, on the
// primary and on the replica, which streams from the primary's new port.
func TestDataDirReuse(t *testing.T) {
	ctx := testContext(t)
	base := t.TempDir()
	for _, d := range []string{base, filepath.Dir(base)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(base, "data")
	opts := pgcluster.Options{Replicas: 1, DataDir: dir, Fsync: true}
	c, err := pgcluster.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend() != pgcluster.BackendLocal {
		_ = c.Close()
		t.Skip("DataDir is a local-backend option")
	}
	conn := connect(t, c.Shards()[0].Primary.DSN())
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := c.Shards()[0].Replicas[0].WaitCaughtUp(ctx, c.Shards()[0].Primary); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c, err = pgcluster.Start(ctx, opts)
	if err != nil {
		t.Fatalf("second start on the same DataDir: %v", err)
	}
	defer c.Close()
	sh := c.Shards()[0]
	if _, err := connect(t, sh.Primary.DSN()).Exec(ctx, "INSERT INTO kept VALUES (43)"); err != nil {
		t.Fatal(err)
	}
	if err := sh.Replicas[0].WaitCaughtUp(ctx, sh.Primary); err != nil {
		t.Fatalf("replica does not stream from the restarted primary: %v", err)
	}
	for _, n := range []*pgcluster.Node{sh.Primary, sh.Replicas[0]} {
		if got := queryInt(t, connect(t, n.DSN()), "SELECT sum(v)::int FROM kept"); got != 85 {
			t.Errorf("%s: sum of kept rows = %d, want 85 (42 from the first run, 43 from the second)", n.Name(), got)
		}
	}

	if _, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: base}); err == nil || !strings.Contains(err.Error(), "neither empty") {
		t.Errorf("Start on a folder that is not a cluster's: %v", err)
	}
}

// TestTLS starts a cluster that serves TLS and connects with full
// verification against its CA, and fails against another CA.
func TestTLS(t *testing.T) {
	ctx := testContext(t)
	c, err := pgcluster.Start(ctx, pgcluster.Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.CAFile() == "" {
		t.Fatal("CAFile() is empty with TLS on")
	}
	n := c.Shards()[0].Primary
	verified := strings.Replace(n.DSN(), "sslmode=disable", "sslmode=verify-full&sslrootcert="+c.CAFile(), 1)
	conn := connect(t, verified)
	if got := queryInt(t, conn, "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); got != 1 {
		t.Errorf("connection with sslmode=verify-full is not encrypted")
	}

	other, err := pgcluster.Start(ctx, pgcluster.Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	wrongCA := strings.Replace(n.DSN(), "sslmode=disable", "sslmode=verify-full&sslrootcert="+other.CAFile(), 1)
	cfg, err := pgx.ParseConfig(wrongCA)
	if err != nil {
		t.Fatal(err)
	}
	if bad, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		bad.Close(ctx)
		t.Error("verify-full against another cluster's CA connected")
	}
}
