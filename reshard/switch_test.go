package reshard_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
)

type post struct{ user, id int64 }

// Writes through a router that follows the store go on across the
// switch: those the fence refuses wait and land on the new owner; none is
// lost, none fails, none is committed on the source after the fence.
func TestSwitchWritesUnderRouterLoad(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seed(t, 1000)
	_, err := e.m.Create(ctx, e.spec("move"))
	require.NoError(t, err)
	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	done := make(chan error, 1)
	go func() { done <- e.m.Run(runCtx, "move") }()
	waitPhase(t, e, "move", reshard.PhaseStreaming)

	r, err := router.Open(ctx, router.Config{Store: e.control, FenceWait: 30 * time.Second, PollInterval: time.Second})
	require.NoError(t, err)
	defer r.Close()

	var (
		mu      sync.Mutex
		acked   []post
		errs    []error
		wg      sync.WaitGroup
		nextID  atomic.Int64
		writing = make(chan struct{})
	)
	nextID.Store(10_000_000)
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-writing:
					return
				default:
				}
				p := post{user: int64(w*1000 + i%997), id: nextID.Add(1)}
				_, err := r.User(p.user).Exec(ctx, "INSERT INTO posts VALUES ($1, $2, 'across the switch')", p.user, p.id)
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
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	if testing.Verbose() {
		e.m = reshard.New(e.control, reshard.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	}
	st, err := e.m.SwitchWrites(ctx, "move", reshard.SwitchOptions{MaxLag: 10 * time.Second, Timeout: 20 * time.Second})
	require.NoError(t, err)
	t.Logf("switch took %v", time.Since(began))
	require.Equal(t, reshard.PhaseSwitched, st.Phase)
	require.EqualValues(t, 2, st.SwitchedVersion)
	time.Sleep(300 * time.Millisecond)
	close(writing)
	wg.Wait()
	require.Empty(t, errs, "no write fails across the switch")

	m, err := e.control.Current(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, m.Version)
	require.Len(t, m.Shards, 2)

	src := connectDSN(t, e.source, e.db)
	tgt := []map[string]int64{keyed(t, connectDSN(t, e.targets[0], e.db), "posts", "user_id"), keyed(t, connectDSN(t, e.targets[1], e.db), "posts", "user_id")}
	onSource := keyed(t, src, "posts", "user_id")
	for row, k := range onSource {
		i := owner(e, k)
		_, ok := tgt[i][row]
		require.True(t, ok, "source row %s is on its target %d", row, i)
	}
	moved := 0
	for _, p := range acked {
		i := owner(e, p.user)
		row := fmt.Sprintf("(%d,%d,\"across the switch\")", p.user, p.id)
		_, ok := tgt[i][row]
		require.True(t, ok, "acknowledged %v is on its target %d", p, i)
		if _, ok := onSource[row]; !ok {
			moved++
		}
	}
	require.Positive(t, moved, "writes after the switch went to the targets only")
	t.Logf("%d writes acknowledged, %d after the switch", len(acked), moved)

	_, err = e.m.Cancel(ctx, "move")
	require.ErrorIs(t, err, reshard.ErrPhase, "no cancel after the switch")
	st, err = e.m.Complete(ctx, "move")
	require.NoError(t, err)
	require.Equal(t, reshard.PhaseCompleted, st.Phase)
	require.NoError(t, <-done)
	status, err := e.m.Status(ctx, "move")
	require.NoError(t, err)
	require.False(t, status.SlotExists)
}

func owner(e *env, key int64) int {
	if e.ranges[0].Contains(shard.HashInt64(key)) {
		return 0
	}
	return 1
}

// A transaction that holds the fence back past the timeout: the switch
// aborts before its point of no return, unfenced, and can be done later.
func TestSwitchAbortsOnTimeout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seed(t, 100)
	_, err := e.m.Create(ctx, e.spec("slow"))
	require.NoError(t, err)
	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	done := make(chan error, 1)
	go func() { done <- e.m.Run(runCtx, "slow") }()
	waitPhase(t, e, "slow", reshard.PhaseStreaming)

	blocker := connectDSN(t, e.source, e.db)
	_, err = blocker.Exec(ctx, "BEGIN; INSERT INTO posts VALUES (1, 99999999, 'long transaction')")
	require.NoError(t, err)
	_, err = e.m.SwitchWrites(ctx, "slow", reshard.SwitchOptions{MaxLag: 10 * time.Second, Timeout: time.Second})
	require.ErrorIs(t, err, reshard.ErrSwitchTimeout)
	require.ErrorContains(t, err, "the source is unfenced")
	st, err := e.m.Get(ctx, "slow")
	require.NoError(t, err)
	require.Equal(t, reshard.PhaseStreaming, st.Phase)
	require.False(t, st.PointOfNoReturn)
	m, err := e.control.Current(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, m.Version, "no map published")

	// The long transaction commits: it was never refused, and it moves.
	_, err = blocker.Exec(ctx, "COMMIT")
	require.NoError(t, err)
	st, err = e.m.SwitchWrites(ctx, "slow", reshard.SwitchOptions{MaxLag: 10 * time.Second, Timeout: 20 * time.Second})
	require.NoError(t, err)
	require.Equal(t, reshard.PhaseSwitched, st.Phase)
	e.requireSame(t)
	kill()
	<-done
}
