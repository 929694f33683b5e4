package topology_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/topology"
)

// cluster is two shards without replicas, shared by the package's tests.
// The control databases are made per test on shard0's server.
var cluster *pgcluster.Cluster

const pwVar = "PGSHARD_TEST_PASSWORD"

func TestMain(m *testing.M) {
	os.Setenv(pwVar, "pgshard") // pgcluster's default password
	os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 2}, &cluster))
}

// dsnOf names a node with its password as a variable, as the store wants.
func dsnOf(n *pgcluster.Node, db string) string {
	return fmt.Sprintf("postgres://pgshard:${%s}@127.0.0.1:%d/%s?sslmode=disable", pwVar, n.Port(), db)
}

var dbSeq atomic.Int64

// controlDB makes a fresh database on shard0's server and opens a store on it.
func controlDB(t *testing.T) *topology.Store {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("control_%d_%d", os.Getpid(), dbSeq.Add(1))
	p := cluster.Shards()[0].Primary
	require.NoError(t, p.SuperExec(ctx, "CREATE DATABASE "+name+" OWNER pgshard"))
	s, err := topology.Open(ctx, dsnOf(p, name))
	require.NoError(t, err)
	t.Cleanup(func() {
		s.Close()
		_ = p.SuperExec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)")
	})
	return s
}

// clusterMap gives shard0 the range -80 (as "a") and shard1 80- (as "b").
func clusterMap() *topology.Map {
	sh := cluster.Shards()
	return &topology.Map{Shards: []topology.Shard{
		{Name: "a", Range: "-80", Primary: dsnOf(sh[0].Primary, "pgshard")},
		{Name: "b", Range: "80-", Primary: dsnOf(sh[1].Primary, "pgshard")},
	}}
}

// connAt connects to a shard primary as a router whose set was built from
// map version v (0: as a plain client).
func connAt(t *testing.T, n *pgcluster.Node, v int64) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(n.DSN())
	require.NoError(t, err)
	if v > 0 {
		cfg.RuntimeParams[topology.VersionParam] = fmt.Sprint(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// resetFences removes every fence from the cluster's shards and makes the
// test table.
func resetFences(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, sh := range cluster.Shards() {
		require.NoError(t, sh.Primary.SuperExec(ctx, "DROP SCHEMA IF EXISTS pgshard CASCADE"))
		require.NoError(t, sh.Primary.SuperExec(ctx, "CREATE TABLE IF NOT EXISTS fenced_rows (id bigint PRIMARY KEY) ; ALTER TABLE fenced_rows OWNER TO pgshard; TRUNCATE fenced_rows"))
	}
}
