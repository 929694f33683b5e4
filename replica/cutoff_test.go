package replica_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/replica"
)

// A node that dies right after sending a row: QueryRow keeps the whole row
// it received, since it wants nothing more.
func TestRowSurvivesLossAfterItArrived(t *testing.T) {
	s := newSet(t, cluster, fast)
	var v int
	var killed bool
	row := s.ReadRow(context.Background(), replica.ReadOptions{Primary: true},
		"SELECT v, pg_terminate_backend(pg_backend_pid()) FROM (VALUES (42)) AS t(v)")
	require.NoError(t, row.Scan(&v, &killed), "Scan")
	assert.Equal(t, 42, v)
}
