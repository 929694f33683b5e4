package pgcluster_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

// A logical cluster decodes WAL, and a shard added to it later is a full
// member: named after the last, same settings, stopped by Close.
func TestLogicalClusterGrows(t *testing.T) {
	ctx := testContext(t)
	c, err := pgcluster.Start(ctx, pgcluster.Options{}.Logical())
	require.NoError(t, err)
	defer c.Close()

	added, err := c.AddShard(ctx, 0)
	require.NoError(t, err)
	require.Equal(t, "shard1", added.Name)
	require.Len(t, c.Shards(), 2)
	require.Len(t, c.Nodes(), 2)
	n, err := c.Node("shard1-primary")
	require.NoError(t, err)
	require.Same(t, added.Primary, n)

	for _, sh := range c.Shards() {
		conn := connect(t, sh.Primary.SuperDSN())
		var level string
		require.NoError(t, conn.QueryRow(ctx, "SHOW wal_level").Scan(&level))
		require.Equal(t, "logical", level, "shard %s", sh.Name)
	}
	require.NotEqual(t, c.Shards()[0].Primary.Port(), added.Primary.Port())

	require.NoError(t, c.Close())
	_, err = c.AddShard(ctx, 0)
	require.ErrorIs(t, err, pgcluster.ErrClosed)
}
