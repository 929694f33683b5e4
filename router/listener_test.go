package router_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// A burst of invalidations reaches a listener at once; it must handle them
// with a read of the primary's position per batch, not per notification.
// A listener that made one round trip per notification fell behind on a
// busy shard (more so while it also committed barrier markers on its own
// connection), and its process served invalidated entries for tenths of a
// second: the chaos suite's stale reads after a listener reconnect.
func TestListenerHandlesABurstInFewRoundTrips(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Channel = "pgshard_burst_test" // no other test's invalidations
	reader, writer := open(t, cfg), open(t, cfg)
	c := router.NewCache[int](reader, "burst", cache.Options{Capacity: 1000})
	target := reader.Shards()[0]
	const n = 50
	key := func(i int) string { return fmt.Sprintf("burst:%d", i) }
	for i := range n {
		v, err := c.Get(ctx, target, key(i), func(context.Context) (int, error) { return i, nil })
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
	shardStats := func() router.ShardStats { return reader.Stats().Shards[0] }
	dropped, reads := shardStats().Invalidations, router.FloorReads(reader, target.Shard())

	// One transaction, one notification per key: they are delivered together.
	require.NoError(t, writer.Shards()[0].Tx(ctx, func(tx pgx.Tx) error {
		for i := range n {
			if err := router.Invalidate(ctx, tx, key(i)); err != nil {
				return err
			}
		}
		return nil
	}))
	eventually(t, 30*time.Second, "the reader drops every key", func() bool { return shardStats().Invalidations-dropped >= n })
	for i := range n {
		v, err := c.Get(ctx, target, key(i), func(context.Context) (int, error) { return -1, nil })
		require.NoError(t, err)
		require.Equal(t, -1, v, "key %d was invalidated: its Get loads again", i)
	}
	got := router.FloorReads(reader, target.Shard()) - reads
	assert.LessOrEqual(t, got, uint64(3), "reads of the position for %d notifications delivered at once", n)
}

// queryLog is a pgx tracer that keeps the SQL of every query it sees.
type queryLog struct {
	mu  sync.Mutex
	sql []string
}

func (q *queryLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sql = append(q.sql, data.SQL)
	return ctx
}

func (q *queryLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (q *queryLog) saw(prefix string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.ContainsFunc(q.sql, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// The cache listener connects as the pools do: what ConfigurePool sets
// for connecting (here a tracer) applies to it too.
func TestListenerConnectsWithThePoolsSettings(t *testing.T) {
	log := &queryLog{}
	cfg := config(t, cluster)
	cfg.Replica.ConfigurePool = func(_ replica.PoolInfo, pc *pgxpool.Config) { pc.ConnConfig.Tracer = log }
	r := open(t, cfg)
	require.True(t, listening(r), "Open waits for the listeners")
	assert.True(t, log.saw("LISTEN "), "the listener's LISTEN went through ConfigurePool's tracer")
	for _, s := range r.Stats().Shards {
		assert.NotZero(t, s.ListenerPID, "shard %s: the listener's backend", s.Name)
	}
}

// A barrier marker counts only for the listener connection it was sent
// for: one of another generation (sent for a connection before a
// reconnect) proves nothing about what this one has received.
func TestBarrierIgnoresAnotherConnectionsMarker(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, cluster)
	cfg.Channel = "pgshard_marker_test"
	r := open(t, cfg)
	target := r.Shards()[0]
	st := r.Stats().Shards[0]
	require.NotZero(t, st.ListenerPID)
	far := replica.LSN(0xFF<<32 | 0xFFFFFFFF)
	require.Less(t, router.BarrierReceived(r, target.Shard()), far)

	// Generation 0 (connections count from 1), a position far ahead; then
	// an invalidation, queued behind it, tells when it has been handled.
	sh := shardOf(t, r, target.Shard())
	require.NoError(t, sh.Primary.SuperExec(ctx, fmt.Sprintf("SELECT pg_notify('pgshard_barrier_%d', '0/FF/FFFFFFFF')", st.ListenerPID)))
	require.NoError(t, target.Tx(ctx, func(tx pgx.Tx) error { return router.Invalidate(ctx, tx, "marker-test") }))
	eventually(t, 30*time.Second, "the invalidation behind the marker handled", func() bool {
		return r.Stats().Shards[0].Invalidations > st.Invalidations
	})
	assert.Less(t, router.BarrierReceived(r, target.Shard()), far, "a marker of another generation moved the barrier")
	assert.Equal(t, st.ListenerPID, r.Stats().Shards[0].ListenerPID, "the listener kept its connection")
}
