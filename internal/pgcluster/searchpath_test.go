package pgcluster_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The harness's role is named pgshard, like the topology's schema: once a
// fence has made that schema on a shard, an unqualified CREATE TABLE must
// still land in public, where the fence guards it, and an unqualified name
// must still find public's table.
func TestRoleCreatesTablesInPublic(t *testing.T) {
	ctx := testContext(t)
	c := connect(t, cluster.Shards()[0].Primary.DSN())
	exec(t, c, "CREATE SCHEMA IF NOT EXISTS pgshard")
	exec(t, c, "CREATE TABLE search_path_probe (id int)")
	var schema string
	require.NoError(t, c.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'search_path_probe'").Scan(&schema))
	assert.Equal(t, "public", schema, "the role's tables went to the schema named like it")
	exec(t, c, "DROP TABLE search_path_probe")
}
