package pgcluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

func startProxy(t *testing.T, ctx context.Context, n *pgcluster.Node) *pgcluster.Proxy {
	t.Helper()
	p, err := n.Proxy(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestProxyPassesTraffic(t *testing.T) {
	ctx := testContext(t)
	n := cluster.Shards()[0].Primary
	p := startProxy(t, ctx, n)
	assert.NotEqual(t, n.Port(), p.Port())
	conn := connect(t, p.SuperDSN())
	assert.Equal(t, int64(1), queryInt(t, conn, "SELECT count(*) FROM pg_roles WHERE rolname = current_user AND rolsuper"),
		"SuperDSN through the proxy connects the superuser")
	// More than one chunk each way.
	assert.Equal(t, int64(200000), queryInt(t, conn, "SELECT length(string_agg(md5(i::text), '')) / 32 * 10 FROM generate_series(1, 20000) i"))
	assert.Equal(t, int64(1), queryInt(t, connect(t, p.DSN()), "SELECT 1"))
}

func TestProxyBlackhole(t *testing.T) {
	ctx := testContext(t)
	n := cluster.Shards()[0].Primary
	p := startProxy(t, ctx, n)
	via := connect(t, p.DSN())
	direct := connect(t, n.DSN())
	require.Equal(t, int64(1), queryInt(t, via, "SELECT 1"))

	p.Blackhole()
	pending := queryAsync(via)
	requireSilent(t, pending, "a session through a blackholed proxy")
	assert.Error(t, connectWithin(ctx, p.DSN(), silence), "a new connection through a blackholed proxy")
	assert.Equal(t, int64(1), queryInt(t, direct, "SELECT 1"), "a direct session while the proxy is blackholed")

	p.Heal()
	// Nothing was dropped: the held query is answered and the session goes on.
	requireAnswers(t, ctx, pending, "the query held by the blackhole")
	assert.Equal(t, int64(2), queryInt(t, via, "SELECT 2"))
}

func TestProxySever(t *testing.T) {
	ctx := testContext(t)
	n := cluster.Shards()[0].Primary
	p := startProxy(t, ctx, n)
	via := connect(t, p.DSN())
	direct := connect(t, n.DSN())
	require.Equal(t, int64(1), queryInt(t, via, "SELECT 1"))

	p.Sever()
	_, err := via.Exec(ctx, "SELECT 1")
	assert.Error(t, err, "a session through a severed proxy")
	assert.Error(t, connectWithin(ctx, p.DSN(), 5*time.Second), "a new connection through a severed proxy")
	assert.Equal(t, int64(1), queryInt(t, direct, "SELECT 1"), "a direct session while the proxy is severed")

	p.Heal()
	require.NoError(t, connectWithin(ctx, p.DSN(), 10*time.Second), "a new connection after Heal")
}

// TestProxySlowAndLossy checks the lower bounds the faults promise: a machine under load
// can only make a query slower.
func TestProxySlowAndLossy(t *testing.T) {
	ctx := testContext(t)
	p := startProxy(t, ctx, cluster.Shards()[1].Primary)
	via := connect(t, p.DSN())
	timed := func() time.Duration {
		began := time.Now()
		require.Equal(t, int64(1), queryInt(t, via, "SELECT 1"))
		return time.Since(began)
	}

	p.Slow(150 * time.Millisecond)
	assert.GreaterOrEqual(t, timed(), 300*time.Millisecond, "a round trip with 150 ms each way")
	p.Slow(0)
	p.Lossy(1) // every chunk lost once: held 200 ms, then 400 ms for the next in a row
	assert.GreaterOrEqual(t, timed(), 400*time.Millisecond, "a round trip with every chunk lost")
	p.Heal()
	assert.Equal(t, int64(2), queryInt(t, via, "SELECT 2"), "the session after Heal")
}
