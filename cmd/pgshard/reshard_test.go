package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The reshard commands' usage and preflight, through the CLI: this
// package's cluster runs with wal_level = replica, which create refuses,
// naming it. The workflow itself is tested in package reshard.
func TestReshardCommands(t *testing.T) {
	ctx := context.Background()
	p0, p1 := cluster.Shards()[0].Primary, cluster.Shards()[1].Primary
	require.NoError(t, p0.SuperExec(ctx, "CREATE DATABASE cli_reshard OWNER pgshard"))
	control := fmt.Sprintf("postgres://pgshard:${PW}@127.0.0.1:%d/cli_reshard?sslmode=disable", p0.Port())
	t.Setenv("PW", "pgshard")
	require.NoError(t, p0.SuperExec(ctx, `CREATE TABLE IF NOT EXISTS cli_moving (id bigint PRIMARY KEY)`))
	require.NoError(t, p1.SuperExec(ctx, `CREATE TABLE IF NOT EXISTS cli_moving (id bigint PRIMARY KEY)`))
	file := filepath.Join(t.TempDir(), "map.yaml")
	require.NoError(t, os.WriteFile(file, fmt.Appendf(nil, "shards:\n  - {name: a, range: \"-\", primary: \"postgres://pgshard:${PW}@127.0.0.1:%d/pgshard?sslmode=disable\"}\n", p0.Port()), 0o600))
	for _, args := range [][]string{{"topology", "init"}, {"topology", "apply", file}, {"schema", "add-table", "cli_moving", "--key", "id"}} {
		_, errOut, code := pgshard(t, control, args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
	}

	out, _, code := pgshard(t, control, "reshard", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "cancel NAME")
	_, errOut, code := pgshard(t, control, "reshard", "create", "w")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "give --source RANGE and at least one --target RANGE=DSN")
	_, errOut, code = pgshard(t, control, "reshard", "create", "w", "--source", "-", "--target", "nodsn")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "want RANGE=DSN")

	target := func(r string) string {
		return fmt.Sprintf("%s=postgres://pgshard:${PW}@127.0.0.1:%d/pgshard?sslmode=disable", r, p1.Port())
	}
	_, errOut, code = pgshard(t, control, "reshard", "create", "w", "--source", "80-", "--target", target("80-"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no shard of map version 1 has the range 80-")
	_, errOut, code = pgshard(t, control, "reshard", "create", "w", "--source", "-", "--target", target("-80"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "gap 80-")
	_, errOut, code = pgshard(t, control, "reshard", "create", "w", "--source", "-", "--target", target("-"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "wal_level is replica: set wal_level = logical")

	_, errOut, code = pgshard(t, control, "reshard", "status", "w")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `no such workflow: "w"`)
	out, errOut, code = pgshard(t, control, "reshard", "status", "-o", "json")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "[]\n", out, "no workflows")
}
