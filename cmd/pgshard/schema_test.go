package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/topology"
)

func TestSchemaCommands(t *testing.T) {
	ctx := context.Background()
	p0, p1 := cluster.Shards()[0].Primary, cluster.Shards()[1].Primary
	require.NoError(t, p0.SuperExec(ctx, "CREATE DATABASE cli_schema OWNER pgshard"))
	control := fmt.Sprintf("postgres://pgshard:${PW}@127.0.0.1:%d/cli_schema?sslmode=disable", p0.Port())
	t.Setenv("PW", "pgshard")
	for _, p := range []interface {
		SuperExec(context.Context, string, ...any) error
	}{p0, p1} {
		require.NoError(t, p.SuperExec(ctx, `CREATE TABLE IF NOT EXISTS cli_posts (user_id bigint, id bigint, body text, PRIMARY KEY (user_id, id))`))
	}
	node := func(port int) string {
		return fmt.Sprintf("postgres://pgshard:${PW}@127.0.0.1:%d/pgshard?sslmode=disable", port)
	}
	file := filepath.Join(t.TempDir(), "map.yaml")
	require.NoError(t, os.WriteFile(file, fmt.Appendf(nil, "shards:\n  - {name: a, range: \"-80\", primary: %q}\n  - {name: b, range: \"80-\", primary: %q}\n",
		node(p0.Port()), node(p1.Port())), 0o600))
	_, errOut, code := pgshard(t, control, "topology", "init")
	require.Equal(t, 0, code, errOut)
	_, errOut, code = pgshard(t, control, "topology", "apply", file)
	require.Equal(t, 0, code, errOut)

	out, _, code := pgshard(t, control, "schema", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "add-table TABLE --key COLUMN")
	_, errOut, code = pgshard(t, control, "schema", "add-table", "cli_posts")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "give either --key COLUMN or --reference")
	_, errOut, code = pgshard(t, control, "schema", "add-table", "cli_posts", "--key", "body")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "shard a: table cli_posts: key column body is not part of the primary key (user_id, id)")

	out, errOut, code = pgshard(t, control, "schema", "add-table", "cli_posts", "--key", "user_id")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "table cli_posts declared: sharded by user_id (int)")
	out, errOut, code = pgshard(t, control, "schema", "tables", "-o", "json")
	require.Equal(t, 0, code, errOut)
	var tables []topology.Table
	require.NoError(t, json.Unmarshal([]byte(out), &tables))
	require.Len(t, tables, 1)
	require.Equal(t, "user_id", tables[0].Key)

	_, errOut, code = pgshard(t, control, "schema", "remove-table", "cli_posts")
	require.Equal(t, 0, code, errOut)
	_, errOut, code = pgshard(t, control, "schema", "remove-table", "cli_posts")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `table "cli_posts" is not declared`)
}
