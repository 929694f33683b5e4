package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/shard"
)

// passwordFile, inside a kept -data folder, holds the dev cluster's
// password: its roles live in the data, so a later run must use it again.
const passwordFile = "dev-password"

// StartDevCluster starts shards x (1 primary + replicas) PostgreSQL servers
// on loopback and describes them as a topology. dataDir "" means a
// temporary folder that Close removes; otherwise it is kept, and a folder
// kept by an earlier run starts again with its data.
func StartDevCluster(ctx context.Context, shards, replicas int, dataDir string) (*pgcluster.Cluster, *Topology, error) {
	if shards < 1 || shards > 64 || replicas < 0 || replicas > 8 {
		return nil, nil, fmt.Errorf("-shards %d -replicas %d: want 1 to 64 shards and 0 to 8 replicas", shards, replicas)
	}
	// A password of its own, so that the redaction of logs and pages has
	// something distinctive to find, and no two dev clusters share one.
	password := "dev-" + rand.Text()[:16]
	kept := false
	if dataDir != "" {
		b, err := os.ReadFile(filepath.Join(dataDir, passwordFile))
		switch {
		case err == nil:
			password, kept = strings.TrimSpace(string(b)), true
		case !errors.Is(err, os.ErrNotExist):
			return nil, nil, fmt.Errorf("-data %s: %w", dataDir, err)
		}
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: shards, Replicas: replicas, DataDir: dataDir,
		Fsync: dataDir != "", Password: password})
	if err != nil {
		return nil, nil, fmt.Errorf("start the dev cluster: %w", err)
	}
	if dataDir != "" && !kept {
		if err := os.WriteFile(filepath.Join(dataDir, passwordFile), []byte(password+"\n"), 0o600); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("-data %s: keep the password: %w", dataDir, err)
		}
	}
	t := DevTopology(c)
	return c, t, nil
}

// DevTopology describes a running cluster: shard i of n owns the i-th of n
// equal key ranges.
func DevTopology(c *pgcluster.Cluster) *Topology {
	shards := c.Shards()
	ranges := []shard.Range{{}}
	if len(shards) > 1 {
		ranges, _ = (shard.Range{}).Split(len(shards))
	}
	t := &Topology{MaxConns: 16, Cache: CacheTopology{Capacity: 100_000, TTL: 5 * time.Minute, NegativeTTL: time.Second}}
	for i, sh := range shards {
		st := ShardTopology{Name: sh.Name, Range: ranges[i].String(), Primary: sh.Primary.DSN()}
		for _, r := range sh.Replicas {
			st.Replicas = append(st.Replicas, r.DSN())
		}
		t.Shards = append(t.Shards, st)
	}
	return t
}
