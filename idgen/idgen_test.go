package idgen_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/idgen"
)

// Eight processes, each with its own connections, compete for node
// numbers through PostgreSQL (only eight numbers exist in this test) and
// issue 100,000 IDs each: not one duplicate.
func TestProcessesNeverCollide(t *testing.T) {
	const procs, each = 8, 100_000
	dir := t.TempDir()
	table := "leases_procs"
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "IDGEN_CHILD=1", "IDGEN_DSN="+cluster.Shards()[0].Primary.DSN(),
			fmt.Sprintf("IDGEN_N=%d", each), "IDGEN_NODES=8", "IDGEN_TABLE="+table,
			"IDGEN_OUT="+filepath.Join(dir, fmt.Sprint(i)))
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		require.NoError(t, cmd.Wait(), "process %d", i)
	}
	seen := make(map[int64]int, procs*each)
	nodes := map[int]int{}
	for i := range procs {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		require.NoError(t, err)
		require.Len(t, b, 8*each)
		var prev int64
		for j := 0; j < len(b); j += 8 {
			id := int64(binary.BigEndian.Uint64(b[j:]))
			require.Greater(t, id, prev, "process %d: IDs grow", i)
			prev = id
			if other, dup := seen[id]; dup {
				t.Fatalf("ID %d issued by processes %d and %d", id, other, i)
			}
			seen[id] = i
		}
		node := idgen.Node(prev)
		if other, dup := nodes[node]; dup {
			t.Fatalf("node %d leased by processes %d and %d at once", node, other, i)
		}
		nodes[node] = i
	}
	assert.Len(t, seen, procs*each)
}

// A generator whose lease ran out and was taken over stops issuing, and
// the new holder's IDs are above every ID of the old one, even with a
// clock an hour behind.
func TestTakenOverStopsIssuing(t *testing.T) {
	ctx := context.Background()
	db := pool(t, cluster.Shards()[0].Primary.DSN())
	opts := idgen.Options{Table: "leases_takeover", TTL: time.Second, Nodes: 1}
	g1, err := idgen.New(ctx, db, opts)
	require.NoError(t, err)
	defer g1.Close(ctx)
	var last int64
	for range 1000 {
		last, err = g1.Next()
		require.NoError(t, err)
	}
	_, err = idgen.New(ctx, db, opts)
	require.ErrorIs(t, err, idgen.ErrNoFreeNode, "the only number is held")

	// As if g1's process had been paused past its TTL: the lease expires.
	_, err = db.Exec(ctx, "UPDATE leases_takeover SET expires = now() - interval '1 second' WHERE node = 0")
	require.NoError(t, err)
	behind := opts
	behind.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	g2, err := idgen.New(ctx, db, behind)
	require.NoError(t, err)
	defer g2.Close(ctx)
	require.Equal(t, g1.Node(), g2.Node())
	first, err := g2.Next()
	require.NoError(t, err)
	assert.Greater(t, first, last, "the new holder issues above the old one's IDs")

	require.Eventually(t, func() bool {
		_, err := g1.Next()
		return err != nil
	}, 5*time.Second, 5*time.Millisecond, "the old holder stops")
	_, err = g1.Next()
	assert.ErrorIs(t, err, idgen.ErrLeaseLost)
	_, err = g2.Next()
	assert.NoError(t, err)
}

// A generator that cannot reach the database stops issuing before its
// lease could be given to anyone, and resumes when it renews again.
func TestUnreachableDatabaseStopsIssuing(t *testing.T) {
	ctx := context.Background()
	proxy, err := cluster.Shards()[0].Primary.Proxy(ctx)
	require.NoError(t, err)
	db := pool(t, proxy.DSN())
	g, err := idgen.New(ctx, db, idgen.Options{Table: "leases_unreachable", TTL: time.Second})
	require.NoError(t, err)
	defer g.Close(ctx)
	_, err = g.Next()
	require.NoError(t, err)
	proxy.Blackhole()
	var stopped time.Time
	require.Eventually(t, func() bool {
		_, err := g.Next()
		stopped = time.Now()
		return err != nil
	}, 3*time.Second, 5*time.Millisecond)
	// It stopped while the database still held the lease for it (same
	// host, same wall clock): no one else could have had the number yet.
	var expires time.Time
	direct := pool(t, cluster.Shards()[0].Primary.DSN())
	require.NoError(t, direct.QueryRow(ctx, "SELECT expires FROM leases_unreachable WHERE node = $1", g.Node()).Scan(&expires))
	assert.True(t, stopped.Before(expires), "stopped at %s, after the lease expired at %s", stopped, expires)
	_, err = g.Next()
	assert.ErrorIs(t, err, idgen.ErrLeaseExpired)
	proxy.Heal()
	require.Eventually(t, func() bool {
		_, err := g.Next()
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "issues again after a renewal")
}

// A clock that steps back does not make IDs repeat or shrink.
func TestClockStepsBack(t *testing.T) {
	ctx := context.Background()
	db := pool(t, cluster.Shards()[0].Primary.DSN())
	var offset atomic.Int64
	g, err := idgen.New(ctx, db, idgen.Options{Table: "leases_clock", Now: func() time.Time {
		return time.Now().Add(time.Duration(offset.Load()))
	}})
	require.NoError(t, err)
	defer g.Close(ctx)
	var prev int64
	for i := range 20_000 {
		if i == 10_000 {
			offset.Store(int64(-time.Minute)) // the clock steps back a minute
		}
		id, err := g.Next()
		require.NoError(t, err)
		require.Greater(t, id, prev)
		prev = id
	}
}

// Concurrent Next calls of one generator never return one ID twice.
func TestConcurrentNext(t *testing.T) {
	ctx := context.Background()
	db := pool(t, cluster.Shards()[0].Primary.DSN())
	g, err := idgen.New(ctx, db, idgen.Options{Table: "leases_concurrent"})
	require.NoError(t, err)
	defer g.Close(ctx)
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5000 {
				id, err := g.Next()
				assert.NoError(t, err)
				mu.Lock()
				assert.False(t, seen[id])
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Len(t, seen, 40_000)
}

func TestOptionsRefused(t *testing.T) {
	ctx := context.Background()
	db := pool(t, cluster.Shards()[0].Primary.DSN())
	for _, o := range []idgen.Options{{TTL: -1}, {TTL: time.Millisecond}, {TTL: time.Second, Renew: 2 * time.Second}, {Nodes: 2000}} {
		_, err := idgen.New(ctx, db, o)
		assert.ErrorIs(t, err, idgen.ErrInvalidOptions, "%+v", o)
	}
}
