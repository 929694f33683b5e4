package idgen_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgshard/pgshard/idgen"
	"github.com/pgshard/pgshard/internal/pgcluster"
)

// cluster is one PostgreSQL server holding the lease tables.
var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	if os.Getenv("IDGEN_CHILD") != "" {
		os.Exit(child())
	}
	os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 1}, &cluster))
}

// child is one process of TestProcessesNeverCollide: it takes a lease,
// issues IDGEN_N IDs and writes them, big-endian, to IDGEN_OUT.
func child() int {
	ctx := context.Background()
	n, _ := strconv.Atoi(os.Getenv("IDGEN_N"))
	nodes, _ := strconv.Atoi(os.Getenv("IDGEN_NODES"))
	pool, err := pgxpool.New(ctx, os.Getenv("IDGEN_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	g, err := idgen.New(ctx, pool, idgen.Options{Table: os.Getenv("IDGEN_TABLE"), TTL: 2 * time.Second, Nodes: nodes})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer g.Close(ctx)
	buf := make([]byte, 0, 8*n)
	for range n {
		id, err := g.Next()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		buf = binary.BigEndian.AppendUint64(buf, uint64(id))
	}
	if err := os.WriteFile(os.Getenv("IDGEN_OUT"), buf, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func pool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
