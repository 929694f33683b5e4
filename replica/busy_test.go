package replica_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/replica"
)

// With the primary's connection slots taken by other clients, a write that
// finds no idle pooled connection waits for one instead of failing as "no
// primary": the primary is up, it only refuses new sessions (issue: with
// the slots taken, writes were refused while the pool's open connections
// were never tried).
func TestWritesWaitForAPooledConnectionWhenSlotsAreTaken(t *testing.T) {
	ctx := context.Background()
	opts := fast
	opts.ConnectTimeout = 5 * time.Second
	opts.ConfigurePool = func(_ replica.PoolInfo, pc *pgxpool.Config) { pc.MaxConns = 8 }
	s := newSet(t, cluster, opts)
	mustExec(t, s, "CREATE TABLE IF NOT EXISTS busy (id bigserial PRIMARY KEY)")
	prim := cluster.Shards()[0].Primary

	// Other clients take every slot the pool could still open.
	var hogs []*pgx.Conn
	t.Cleanup(func() {
		for _, c := range hogs {
			c.Close(context.Background())
		}
	})
	for len(hogs) < 200 {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := pgx.Connect(cctx, prim.DSN())
		cancel()
		if err != nil {
			t.Logf("slots taken after %d sessions: %v", len(hogs), err)
			break
		}
		hogs = append(hogs, c)
	}
	require.Less(t, len(hogs), 200, "the server never refused a session")

	// More writers than the pool has open connections: some must wait
	// for one.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok       int
		failures []error
	)
	for range 6 {
		wg.Go(func() {
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				_, err := s.Exec(ctx, "INSERT INTO busy DEFAULT VALUES")
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					ok++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d writes committed, %d failed", ok, len(failures))
	noPrimary := 0
	for _, err := range failures {
		if errors.Is(err, replica.ErrNoPrimary) {
			noPrimary++
		}
	}
	if len(failures) > 0 {
		t.Logf("first failure: %v", failures[0])
	}
	assert.Zero(t, noPrimary, "writes refused as no primary")
	assert.Empty(t, failures, "writes failed while the primary was up with open pooled connections")
	assert.Positive(t, ok)
}
