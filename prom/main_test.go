package prom_test

import (
	"os"
	"testing"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

// cluster is one shard of a primary and a replica, shared by the tests
// and the Example.
var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 1, Replicas: 1}, &cluster))
}
