package reshard_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// cluster is three shards with wal_level = logical: shard0 is the source
// (and holds the control databases), shard1 and shard2 the targets. Each
// test works in databases of its own on each.
var cluster *pgcluster.Cluster

const pwVar = "PGSHARD_RESHARD_TEST_PW"

func TestMain(m *testing.M) {
	os.Setenv(pwVar, "pgshard")
	os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 3}.Logical(), &cluster))
}

var seq atomic.Int64

// env is one test's workflow setting.
type env struct {
	db      string
	control *topology.Store
	m       *reshard.Manager
	source  *pgcluster.Node
	targets []*pgcluster.Node
	ranges  []shard.Range
}

// superDSN names a node's database as the superuser, password from the
// environment as the store wants.
func superDSN(n *pgcluster.Node, db string) string {
	return fmt.Sprintf("postgres://postgres:${%s}@127.0.0.1:%d/%s?sslmode=disable", pwVar, n.Port(), db)
}

func expand(dsn string) string {
	s, err := topology.ExpandDSN(dsn, os.LookupEnv)
	if err != nil {
		panic(err)
	}
	return s
}

const testSchema = `
CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE posts (user_id bigint, id bigint, body text, PRIMARY KEY (user_id, id));
CREATE TABLE countries (code text PRIMARY KEY, name text);
`

// newEnv makes the databases, a control store whose map has the source
// as its only shard ("-"), the declared tables and a Manager. The targets
// get the schema too (Create then compares it), but with emptyTargets,
// which leaves Create to copy it with pg_dump.
func newEnv(t testing.TB, emptyTargets ...bool) *env {
	t.Helper()
	ctx := context.Background()
	sh := cluster.Shards()
	e := &env{db: fmt.Sprintf("rs_%d_%d", os.Getpid(), seq.Add(1)), source: sh[0].Primary,
		targets: []*pgcluster.Node{sh[1].Primary, sh[2].Primary}}
	for _, n := range []*pgcluster.Node{sh[0].Primary, sh[1].Primary, sh[2].Primary} {
		require.NoError(t, n.SuperExec(ctx, "CREATE DATABASE "+e.db))
	}
	require.NoError(t, e.source.SuperExec(ctx, "CREATE DATABASE "+e.db+"_ctl"))
	t.Cleanup(func() {
		for _, n := range []*pgcluster.Node{sh[0].Primary, sh[1].Primary, sh[2].Primary} {
			_ = n.SuperExec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, e.db)
			_ = n.SuperExec(context.Background(), "DROP DATABASE IF EXISTS "+e.db+" WITH (FORCE)")
			_ = n.SuperExec(context.Background(), "DROP DATABASE IF EXISTS "+e.db+"_ctl WITH (FORCE)")
		}
	})
	src := connectDSN(t, e.source, e.db)
	_, err := src.Exec(ctx, testSchema)
	require.NoError(t, err)
	if len(emptyTargets) == 0 || !emptyTargets[0] {
		for _, n := range e.targets {
			_, err := connectDSN(t, n, e.db).Exec(ctx, testSchema)
			require.NoError(t, err)
		}
	}

	e.control, err = topology.Open(ctx, superDSN(e.source, e.db+"_ctl"))
	require.NoError(t, err)
	t.Cleanup(e.control.Close)
	require.NoError(t, e.control.Init(ctx))
	_, err = e.control.Apply(ctx, &topology.Map{Shards: []topology.Shard{{Name: "src", Range: "-", Primary: superDSN(e.source, e.db)}}}, topology.ApplyOptions{})
	require.NoError(t, err)
	for _, tb := range []topology.Table{{Name: "users", Key: "id"}, {Name: "posts", Key: "user_id"}, {Name: "countries", Reference: true}} {
		_, err := e.control.AddTable(ctx, tb, topology.TableOptions{})
		require.NoError(t, err)
	}
	o := reshard.Options{StatusInterval: 100 * time.Millisecond, RetryInterval: 100 * time.Millisecond}
	if os.Getenv("RESHARD_TEST_LOG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	e.m = reshard.New(e.control, o)
	e.ranges = []shard.Range{{End: 0x8000000000000000}, {Start: 0x8000000000000000}}
	return e
}

func (e *env) spec(name string) reshard.Spec {
	return reshard.Spec{Name: name, Source: "-", Targets: []reshard.Target{
		{Range: "-80", Primary: superDSN(e.targets[0], e.db)},
		{Range: "80-", Primary: superDSN(e.targets[1], e.db)},
	}}
}

func connectDSN(t testing.TB, n *pgcluster.Node, db string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), expand(superDSN(n, db)))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// rows reads a table's rows as text, sorted.
func rows(t *testing.T, c *pgx.Conn, table string) []string {
	t.Helper()
	r, err := c.Query(context.Background(), "SELECT t::text FROM "+table+" t ORDER BY 1")
	require.NoError(t, err)
	out, err := pgx.CollectRows(r, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// keyed reads (key, row) pairs of a sharded table.
func keyed(t *testing.T, c *pgx.Conn, table, key string) map[string]int64 {
	t.Helper()
	r, err := c.Query(context.Background(), "SELECT t::text, "+key+" FROM "+table+" t")
	require.NoError(t, err)
	out := map[string]int64{}
	for r.Next() {
		var row string
		var k int64
		require.NoError(t, r.Scan(&row, &k))
		out[row] = k
	}
	require.NoError(t, r.Err())
	return out
}

// requireSame checks that each target holds exactly the source's rows
// whose key it owns, and every reference row, naming the first that
// differs.
func (e *env) requireSame(t *testing.T) {
	t.Helper()
	src := connectDSN(t, e.source, e.db)
	for _, tb := range []struct{ name, key string }{{"users", "id"}, {"posts", "user_id"}} {
		all := keyed(t, src, tb.name, tb.key)
		for i, n := range e.targets {
			var want []string
			for row, k := range all {
				if e.ranges[i].Contains(shard.HashInt64(k)) {
					want = append(want, row)
				}
			}
			slices.Sort(want)
			got := rows(t, connectDSN(t, n, e.db), tb.name)
			if !slices.Equal(want, got) {
				require.Failf(t, "target differs", "table %s, target %d: %s", tb.name, i, firstDiff(want, got))
			}
		}
	}
	want := rows(t, src, "countries")
	for i, n := range e.targets {
		require.Equal(t, want, rows(t, connectDSN(t, n, e.db), "countries"), "countries on target %d", i)
	}
}

func firstDiff(want, got []string) string {
	w, g := map[string]bool{}, map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	for _, s := range got {
		g[s] = true
	}
	for _, s := range want {
		if !g[s] {
			return fmt.Sprintf("missing %s (want %d rows, got %d)", s, len(want), len(got))
		}
	}
	for _, s := range got {
		if !w[s] {
			return fmt.Sprintf("extra %s (want %d rows, got %d)", s, len(want), len(got))
		}
	}
	return fmt.Sprintf("duplicates: want %d rows, got %d", len(want), len(got))
}
