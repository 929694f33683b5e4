package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/topology"
)

func TestFenceCommands(t *testing.T) {
	ctx := context.Background()
	p0, p1 := cluster.Shards()[0].Primary, cluster.Shards()[1].Primary
	require.NoError(t, p0.SuperExec(ctx, "CREATE DATABASE cli_fences OWNER pgshard"))
	t.Cleanup(func() {
		_ = p0.SuperExec(ctx, "DROP DATABASE cli_fences WITH (FORCE)")
		for _, n := range []*pgcluster.Node{p0, p1} {
			_ = n.SuperExec(ctx, "DROP SCHEMA IF EXISTS pgshard CASCADE")
		}
	})
	control := fmt.Sprintf("postgres://pgshard:${PW}@127.0.0.1:%d/cli_fences?sslmode=disable", p0.Port())
	t.Setenv("PW", "pgshard")
	node := func(n *pgcluster.Node) string {
		return fmt.Sprintf("postgres://pgshard:${PW}@127.0.0.1:%d/pgshard?sslmode=disable", n.Port())
	}
	mapFile := func(aRange, bRange string) string {
		path := filepath.Join(t.TempDir(), "map.yaml")
		body := fmt.Sprintf("shards:\n  - {name: a, range: %q, primary: %q}\n  - {name: b, range: %q, primary: %q}\n", aRange, node(p0), bRange, node(p1))
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		return path
	}
	_, errOut, code := pgshard(t, control, "topology", "init")
	require.Equal(t, 0, code, errOut)
	_, errOut, code = pgshard(t, control, "topology", "apply", mapFile("-80", "80-"))
	require.Equal(t, 0, code, errOut)

	out, errOut, code := pgshard(t, control, "topology", "fences")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "none (never fenced)")
	require.Contains(t, out, "leases only (no guard)")

	_, errOut, code = pgshard(t, control, "topology", "guard", "postgres://nobody@127.0.0.1:1/x?connect_timeout=1")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "connect")
	out, errOut, code = pgshard(t, control, "topology", "guard", "--owner", "pgshard", p0.SuperDSN())
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "are fenced")

	// Short leases, so that the move's fence may be relaxed soon.
	c, err := pgx.Connect(ctx, p0.DSN())
	require.NoError(t, err)
	defer c.Close(ctx)
	require.NoError(t, topology.InstallFence(ctx, c, topology.FenceState{Shard: "a", Lease: 100 * time.Millisecond}, time.Second))
	_, errOut, code = pgshard(t, control, "topology", "apply", "--lease", "100ms", mapFile("-40", "40-"))
	require.Equal(t, 0, code, errOut)
	out, errOut, code = pgshard(t, control, "topology", "fences", "-o", "json")
	require.Equal(t, 0, code, errOut)
	var fences []topology.ShardFence
	require.NoError(t, json.Unmarshal([]byte(out), &fences))
	require.Len(t, fences, 2)
	require.True(t, fences[0].Found)
	require.Equal(t, int64(2), fences[0].Version)
	require.Equal(t, "-40", fences[0].Range)
	require.Equal(t, 100*time.Millisecond, fences[0].Lease)
	require.True(t, fences[0].RelaxedAt.IsZero())
	require.False(t, fences[1].Found, "b lost nothing")
	require.True(t, fences[0].Guarded)
	require.False(t, fences[1].Guarded)

	time.Sleep(time.Until(fences[0].RelaxAfter) + 100*time.Millisecond)
	out, errOut, code = pgshard(t, control, "topology", "relax")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "removed now")
	var triggers int
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM pg_trigger WHERE tgname = 'pgshard_fence'").Scan(&triggers))
	require.Zero(t, triggers)

	require.NoError(t, p1.Stop(ctx))
	defer func() { require.NoError(t, p1.Start(ctx)) }()
	out, errOut, code = pgshard(t, control, "topology", "fences")
	require.Equal(t, 1, code, "a shard that cannot be read fails the command")
	require.Contains(t, out, "unreadable")
	require.Contains(t, errOut, "shard b:")
}
