package prom_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/prom"
	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// The Tracer counts each event where its help text says.
func TestTracerCounts(t *testing.T) {
	tr := prom.NewTracer(prom.TracerOptions{})
	ctx := context.Background()
	tr.TraceRead(ctx, replica.ReadEvent{Shard: "s", Role: replica.RoleReplica, Attempt: 1, Duration: time.Millisecond})
	tr.TraceRead(ctx, replica.ReadEvent{Shard: "s", Role: replica.RoleReplica, Attempt: 1, Err: errors.New("reset")})
	tr.TraceRead(ctx, replica.ReadEvent{Shard: "s", Role: replica.RolePrimary, Attempt: 2, Fallback: replica.FallbackRetry})
	tr.TraceRead(ctx, replica.ReadEvent{Shard: "s", Role: replica.RolePrimary, Attempt: 1, Fallback: replica.FallbackNoneEligible})
	tr.TraceWrite(ctx, replica.WriteEvent{Shard: "s", Outcome: replica.WriteCommitted})
	tr.TraceWrite(ctx, replica.WriteEvent{Shard: "s", Outcome: replica.WriteUnknown})
	tr.TraceNode(replica.NodeEvent{Shard: "s", Node: "n:1/db", Kind: replica.NodeEjected})

	for _, tc := range []struct {
		name   string
		metric string
		want   float64
	}{
		{"replica reads ok", `pgshard_read_attempts_total{result="ok",role="replica",shard="s"}`, 1},
		{"replica reads failed", `pgshard_read_attempts_total{result="error",role="replica",shard="s"}`, 1},
		{"primary reads", `pgshard_read_attempts_total{result="ok",role="primary",shard="s"}`, 2},
		{"fallback after a retry", `pgshard_read_fallbacks_total{reason="retry",shard="s"}`, 1},
		{"fallback, none eligible", `pgshard_read_fallbacks_total{reason="none-eligible",shard="s"}`, 1},
		{"committed", `pgshard_writes_total{outcome="committed",shard="s"}`, 1},
		{"unknown", `pgshard_writes_total{outcome="unknown",shard="s"}`, 1},
		{"ejected", `pgshard_node_events_total{kind="ejected",node="n:1/db",shard="s"}`, 1},
		{"read latency count", `pgshard_read_attempt_duration_seconds_count{role="replica",shard="s"}`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Contains(t, exposition(t, tr), tc.metric+" "+formatCount(tc.want))
		})
	}
	problems, err := testutil.CollectAndLint(tr)
	require.NoError(t, err)
	assert.Empty(t, problems, "lint")
}

// The Stats collector shows a live router's shard, nodes and caches, and
// passes the Prometheus linter.
func TestStatsCollector(t *testing.T) {
	ctx := context.Background()
	sh := cluster.Shards()[0]
	r, err := router.Open(ctx, router.Config{Shards: []router.ShardConfig{{Name: "users", Range: "-", Primary: sh.Primary.DSN(), Replicas: []string{sh.Replicas[0].DSN()}}}})
	require.NoError(t, err)
	defer r.Close()
	router.NewCache[string](r, "names", cacheOptions())
	st := prom.NewStats(r, prom.StatsOptions{NodeLabel: func(a string) string { return "node-" + a[strings.LastIndex(a, ":")+1:] }})
	text := exposition(t, st)
	for _, want := range []string{
		`pgshard_shard_primary_up{range="-",shard="users"} 1`,
		`pgshard_node_pool_max_connections{node="node-`,
		`role="primary",shard="users"}`,
		`role="replica",shard="users"}`,
		`pgshard_cache_entries{cache="names"} 0`,
		`# TYPE pgshard_node_reads_total counter`,
		"pgshard_map_version 0", // a static map
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "pgshard_map_control_up", "a static router has no store")
	problems, err := testutil.CollectAndLint(st)
	require.NoError(t, err)
	assert.Empty(t, problems, "lint")
}
