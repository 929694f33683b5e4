package pgcluster_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

func systemIdentifier(t *testing.T, n *pgcluster.Node) int64 {
	t.Helper()
	return queryInt(t, connect(t, n.SuperDSN()), "SELECT system_identifier FROM pg_control_system()")
}

// TestSystemIdentifiers checks that each shard's primary has a system identifier of its
// own, though all are copied from one template, and that its replicas share it.
func TestSystemIdentifiers(t *testing.T) {
	seen := map[int64]string{}
	for _, sh := range cluster.Shards() {
		id := systemIdentifier(t, sh.Primary)
		assert.Positive(t, id, "%s's system identifier", sh.Primary.Name())
		if other, dup := seen[id]; dup {
			assert.Failf(t, "shared system identifier", "%s and %s share system identifier %d", sh.Name, other, id)
		}
		seen[id] = sh.Name
		for _, r := range sh.Replicas {
			assert.Equal(t, id, systemIdentifier(t, r), "%s's system identifier, want its primary's", r.Name())
		}
	}
	require.Len(t, seen, len(cluster.Shards()))
}
