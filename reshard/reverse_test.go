package reshard_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/router"
)

// Reverse after a switch under load: the writes the targets took come back
// to the source through the reverse streams, routers hold the writes the
// targets' fence refuses and send them to the source once the map gives
// it the range again; nothing is lost, nothing fails.
func TestReverseUnderLoad(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seed(t, 200)
	_, err := e.m.Create(ctx, e.spec("rev"))
	require.NoError(t, err)
	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	done := make(chan error, 1)
	go func() { done <- e.m.Run(runCtx, "rev") }()
	waitPhase(t, e, "rev", reshard.PhaseStreaming)

	r, err := router.Open(ctx, router.Config{Store: e.control, FenceWait: time.Minute, PollInterval: time.Second})
	require.NoError(t, err)
	defer r.Close()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []post
		errs  []error
		stop  = make(chan struct{})
	)
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := post{user: int64(w*500 + i%300), id: int64(30_000_000 + w*1_000_000 + i)}
				_, err := r.User(p.user).Exec(ctx, "INSERT INTO posts VALUES ($1, $2, 'rev')", p.user, p.id)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					acked = append(acked, p)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	st, err := e.m.SwitchWrites(ctx, "rev", reshard.SwitchOptions{MaxLag: 10 * time.Second, Timeout: 20 * time.Second})
	require.NoError(t, err)
	require.True(t, st.Reverse, "reverse replication set up: %s", st.ReverseError)
	time.Sleep(500 * time.Millisecond) // writes land on the targets
	mu.Lock()
	atSwitch := len(acked)
	mu.Unlock()

	st, err = e.m.Reverse(ctx, "rev", reshard.ReverseOptions{Timeout: 20 * time.Second})
	require.NoError(t, err)
	require.Equal(t, reshard.PhaseReversed, st.Phase)
	m, err := e.control.Current(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, m.Version)
	require.Len(t, m.Shards, 1)
	require.Equal(t, "src", m.Shards[0].Name)
	time.Sleep(300 * time.Millisecond) // writes land on the source again
	close(stop)
	wg.Wait()
	require.Empty(t, errs, "no write fails across the switch and its reverse")
	require.NoError(t, <-done, "Run ends once the workflow is reversed")

	onSource := keyed(t, connectDSN(t, e.source, e.db), "posts", "user_id")
	for _, p := range acked {
		_, ok := onSource[fmt.Sprintf("(%d,%d,rev)", p.user, p.id)]
		require.True(t, ok, "acknowledged %v is on the source", p)
	}
	t.Logf("%d writes acknowledged, %d before the switch", len(acked), atSwitch)
	require.Greater(t, len(acked), atSwitch, "writes went on after the switch")

	_, err = e.m.Cancel(ctx, "rev")
	require.NoError(t, err)
	for _, n := range e.targets {
		var slots int
		require.NoError(t, connectDSN(t, n, e.db).QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots))
		require.Zero(t, slots, "the reverse slots are dropped")
		require.Empty(t, rows(t, connectDSN(t, n, e.db), "posts"))
	}
}
