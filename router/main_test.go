package router_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
)

// cluster is four shards, each a primary and one streaming replica, shared
// by every test of the package. Tests that pause or stop a node put it
// back before they end.
var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 4, Replicas: 1}, &cluster))
}

var fast = replica.Options{CheckInterval: 50 * time.Millisecond, CheckTimeout: 500 * time.Millisecond, ConnectTimeout: 10 * time.Second, MaxLag: 300 * time.Millisecond}

// config describes the cluster's shards with equal ranges, in order.
func config(t testing.TB, c *pgcluster.Cluster) router.Config {
	if t != nil {
		t.Helper()
	}
	shards := c.Shards()
	ranges := []shard.Range{{}}
	if len(shards) > 1 {
		var err error
		if ranges, err = (shard.Range{}).Split(len(shards)); err != nil {
			panic(err)
		}
	}
	cfg := router.Config{Replica: fast}
	for i, sh := range shards {
		sc := router.ShardConfig{Range: ranges[i].String(), Primary: sh.Primary.DSN()}
		for _, r := range sh.Replicas {
			sc.Replicas = append(sc.Replicas, r.DSN())
		}
		cfg.Shards = append(cfg.Shards, sc)
	}
	return cfg
}

func open(t testing.TB, cfg router.Config) *router.Router {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := router.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

// nodeOf returns the cluster's shard that a router shard name maps to.
func shardOf(t testing.TB, r *router.Router, name string) pgcluster.Shard {
	t.Helper()
	for i, n := range r.Map().Shards() {
		if n == name {
			return cluster.Shards()[i]
		}
	}
	require.FailNowf(t, "no such shard", "no shard %q", name)
	return pgcluster.Shard{}
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			require.FailNowf(t, "not in time", "%s: not within %v", what, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func schema(t testing.TB, r *router.Router) {
	t.Helper()
	ctx := context.Background()
	for _, stmt := range []string{
		"CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text NOT NULL)",
		"CREATE TABLE IF NOT EXISTS posts (user_id bigint, id bigint, body text, PRIMARY KEY (user_id, id))",
	} {
		require.NoError(t, r.ExecAll(ctx, stmt))
	}
}
