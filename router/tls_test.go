package router_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/router"
)

// TestTLS runs the router over TLS with full certificate verification, as
// a DSN with sslmode=verify-full asks: writes, replica reads, the cache
// listener and every pool connection are encrypted.
func TestTLS(t *testing.T) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Replicas: 1, TLS: true})
	require.NoError(t, err)
	defer c.Close()
	verify := func(dsn string) string {
		return strings.Replace(dsn, "sslmode=disable", "sslmode=verify-full&sslrootcert="+c.CAFile(), 1)
	}
	sh := c.Shards()[0]
	cfg := router.Config{
		Shards:  []router.ShardConfig{{Range: "-", Primary: verify(sh.Primary.DSN()), Replicas: []string{verify(sh.Replicas[0].DSN())}}},
		Replica: fast,
		Cache:   cache.Options{Capacity: 100},
	}
	r := open(t, cfg)
	_, err = r.User(1).Exec(ctx, "CREATE TABLE IF NOT EXISTS t (id int)")
	require.NoError(t, err)
	const encrypted = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
	for _, read := range []struct {
		name string
		ctx  context.Context
	}{{"replica", ctx}, {"primary", router.WithPrimary(ctx)}} {
		info := &router.ReadInfo{}
		var ssl bool
		require.NoError(t, r.User(1).QueryRow(router.WithReadInfo(read.ctx, info), encrypted).Scan(&ssl))
		assert.True(t, ssl, "%s read: not encrypted", read.name)
		assert.Equal(t, read.name, info.ServedBy(), "%s read: served by", read.name)
	}
	eventually(t, 5*time.Second, "listener up over TLS", func() bool { return r.Stats().Shards[0].Listening })
	// Every connection of the pgshard role to the primary is encrypted,
	// the listener's and the checker's included.
	conn, err := pgx.Connect(ctx, sh.Primary.SuperDSN())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var plain int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.usename = 'pgshard' AND NOT s.ssl`).Scan(&plain))
	assert.Zero(t, plain, "connections of the router that are not encrypted")

	// Without the CA, verify-full refuses the server: Open fails.
	bad := cfg
	bad.Replica.ConnectTimeout = time.Second
	bad.Shards = []router.ShardConfig{{Range: "-", Primary: strings.Replace(sh.Primary.DSN(), "sslmode=disable", "sslmode=verify-full", 1)}}
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if r, err := router.Open(octx, bad); !assert.Error(t, err, "Open with verify-full and no CA for a self-signed server succeeded") {
		r.Close()
	}
}
