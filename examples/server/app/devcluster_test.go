package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jackc/pgx/v5"
)

// A -data folder kept by one run starts the next run with its data.
func TestDevClusterKeepsData(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	for _, d := range []string{base, filepath.Dir(base)} {
		require.NoError(t, os.Chmod(d, 0o755)) // the servers run as postgres
	}
	dir := filepath.Join(base, "data")
	c, topo, err := StartDevCluster(ctx, 1, 0, dir)
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, topo.Shards[0].Primary)
	if err == nil {
		_, err = conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
		conn.Close(ctx)
	}
	c.Close()
	require.NoError(t, err)

	c, topo, err = StartDevCluster(ctx, 1, 0, dir)
	require.NoError(t, err, "second run on the same -data")
	defer c.Close()
	conn, err = pgx.Connect(ctx, topo.Shards[0].Primary)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v), "kept row")
	require.Equal(t, 7, v, "kept row")
}
