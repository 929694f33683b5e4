package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/topology"
)

var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 2}, &cluster))
}

// pgshard runs the command with PGSHARD_CONTROL set to control.
func pgshard(t *testing.T, control string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errw bytes.Buffer
	lookup := func(k string) (string, bool) {
		switch k {
		case "PGSHARD_CONTROL":
			return control, control != ""
		case "PW":
			return "pgshard", true
		}
		return "", false
	}
	code = run(context.Background(), args, &out, &errw, lookup)
	return out.String(), errw.String(), code
}

func TestTopologyCommands(t *testing.T) {
	ctx := context.Background()
	p0, p1 := cluster.Shards()[0].Primary, cluster.Shards()[1].Primary
	require.NoError(t, p0.SuperExec(ctx, "CREATE DATABASE cli_control OWNER pgshard"))
	control := fmt.Sprintf("postgres://pgshard:${PW}@127.0.0.1:%d/cli_control?sslmode=disable", p0.Port())
	t.Setenv("PW", "pgshard") // the store's own connection expands from the environment
	node := func(n *pgcluster.Node) string {
		return fmt.Sprintf("postgres://pgshard:${PW}@127.0.0.1:%d/pgshard?sslmode=disable", n.Port())
	}

	_, errOut, code := pgshard(t, "", "topology", "show")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "give --control DSN or set PGSHARD_CONTROL")
	_, _, code = pgshard(t, control, "topology", "nope")
	require.Equal(t, 2, code)
	out, _, code := pgshard(t, control, "topology", "apply", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "-dry-run")

	out, errOut, code = pgshard(t, control, "topology", "init")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "ready")

	dir := t.TempDir()
	file := func(name, body string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		return path
	}
	gap := file("gap.yaml", fmt.Sprintf("shards:\n  - {name: a, range: \"-80\", primary: %q}\n  - {name: b, range: \"90-\", primary: %q}\n", node(p0), node(p1)))
	_, errOut, code = pgshard(t, control, "topology", "apply", gap)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `gap 80-90 between shards "a" (-80) and "b" (90-)`)

	good := file("good.yaml", fmt.Sprintf("shards:\n  - {name: a, range: \"-80\", primary: %q}\n  - {name: b, range: \"80-\", primary: %q}\n", node(p0), node(p1)))
	out, errOut, code = pgshard(t, control, "topology", "apply", "--dry-run", good)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "version 1 (dry run: nothing stored)")
	_, errOut, code = pgshard(t, control, "topology", "show")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no map stored")

	_, errOut, code = pgshard(t, control, "topology", "apply", "--reason", "first", "--by", "ops", good)
	require.Equal(t, 0, code, errOut)
	out, errOut, code = pgshard(t, control, "topology", "show", "-o", "json")
	require.Equal(t, 0, code, errOut)
	var m topology.Map
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	require.Equal(t, int64(1), m.Version)
	require.Equal(t, "ops", m.ChangedBy)

	replica := "postgres://pgshard:${PW}@127.0.0.1:1/pgshard"
	_, errOut, code = pgshard(t, control, "topology", "add-replica", "a", replica)
	require.Equal(t, 0, code, errOut)
	_, errOut, code = pgshard(t, control, "topology", "add-replica", "b", replica)
	require.Equal(t, 1, code, "one node under two shards")
	require.Contains(t, errOut, "node 127.0.0.1:1/pgshard is also shards[0] (a).replicas[0]")
	_, errOut, code = pgshard(t, control, "topology", "set-primary", "a", "127.0.0.1:1/pgshard", "--dry-run")
	require.Equal(t, 0, code, errOut)
	_, errOut, code = pgshard(t, control, "topology", "remove-replica", "a", "127.0.0.1:1/pgshard")
	require.Equal(t, 0, code, errOut)
	_, errOut, code = pgshard(t, control, "topology", "set-state", "b", "draining")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `want serving or fenced`)

	out, errOut, code = pgshard(t, control, "topology", "history")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, "a header and versions 3, 2, 1:\n%s", out)
	require.Contains(t, lines[1], "remove-replica a")
	require.Contains(t, lines[3], "first")

	out, errOut, code = pgshard(t, control, "topology", "show", "-o", "yaml")
	require.Equal(t, 0, code, errOut)
	back, err := topology.ParseFile("show.yaml", []byte(out))
	require.NoError(t, err, "show -o yaml is a file apply reads")
	require.Len(t, back.Shards, 2)
}
