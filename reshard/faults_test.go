package reshard_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/router"
)

var errCrash = errors.New("test: the process died here")

// Writes through a router that follows the store go on across the
// switch, even when the process running the switch dies after the fence,
// or after the point of no return: the writes the fence refuses wait at
// the router, the switch run again finishes it, and they land on the new
// owner; none is lost, none fails, none is committed on the source after
// the fence, none twice.
func TestSwitchResumesAfterCrash(t *testing.T) {
	for _, point := range []string{"fenced", "point of no return"} {
		t.Run(point, func(t *testing.T) {
			t0 := time.Now()
			lap := func(what string) { t.Logf("%v %s", time.Since(t0).Round(time.Millisecond), what) }
			e := newEnv(t)
			lap("env")
			ctx := context.Background()
			e.seed(t, 200)
			_, err := e.m.Create(ctx, e.spec("crash"))
			require.NoError(t, err)
			runCtx, kill := context.WithCancel(ctx)
			defer kill()
			done := make(chan error, 1)
			go func() { done <- e.m.Run(runCtx, "crash") }()
			waitPhase(t, e, "crash", reshard.PhaseStreaming)
			lap("streaming")

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
						p := post{user: int64(w*500 + i%300), id: int64(20_000_000 + w*1_000_000 + i)}
						_, err := r.User(p.user).Exec(ctx, "INSERT INTO posts VALUES ($1, $2, 'crash')", p.user, p.id)
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

			crashing := reshard.New(e.control, reshard.Options{})
			reshard.SetCrash(crashing, func(p string) error {
				if p == point {
					return errCrash
				}
				return nil
			})
			_, err = crashing.SwitchWrites(ctx, "crash", reshard.SwitchOptions{MaxLag: 10 * time.Second, Timeout: 20 * time.Second})
			require.ErrorIs(t, err, errCrash)
			lap("crashed")
			st, err := e.m.Get(ctx, "crash")
			require.NoError(t, err)
			require.Equal(t, reshard.PhaseSwitching, st.Phase)
			require.Equal(t, point == "point of no return", st.PointOfNoReturn)
			time.Sleep(300 * time.Millisecond) // writes wait at the routers meanwhile

			st, err = e.m.SwitchWrites(ctx, "crash", reshard.SwitchOptions{MaxLag: 10 * time.Second, Timeout: 20 * time.Second})
			require.NoError(t, err)
			require.Equal(t, reshard.PhaseSwitched, st.Phase)
			lap("switched")
			mu.Lock()
			atSwitch := len(acked)
			mu.Unlock()
			time.Sleep(200 * time.Millisecond)
			close(stop)
			wg.Wait()
			lap("writers stopped")
			require.Empty(t, errs)

			tgt := []map[string]int64{keyed(t, connectDSN(t, e.targets[0], e.db), "posts", "user_id"), keyed(t, connectDSN(t, e.targets[1], e.db), "posts", "user_id")}
			// The reverse streams bring the targets' writes back to the
			// source: it has every row too.
			onSource := keyed(t, connectDSN(t, e.source, e.db), "posts", "user_id")
			for _, p := range acked {
				row := fmt.Sprintf("(%d,%d,crash)", p.user, p.id)
				_, ok := tgt[owner(e, p.user)][row]
				require.True(t, ok, "acknowledged %v is on its target", p)
			}
			require.Greater(t, len(acked), atSwitch, "writes went on after the switch")
			for row, k := range onSource {
				_, ok := tgt[owner(e, k)][row]
				require.True(t, ok, "source row %s is on its target", row)
			}
			m, err := e.control.Current(ctx)
			require.NoError(t, err)
			require.EqualValues(t, 2, m.Version)
			require.Len(t, m.Shards, 2)
			_, err = e.m.Cancel(ctx, "crash")
			require.ErrorIs(t, err, reshard.ErrPhase, "no cancel after the switch")
			lap("checked")
			_, err = e.m.Complete(ctx, "crash")
			require.NoError(t, err)
			require.NoError(t, <-done, "Run ends once the workflow is completed")
			lap("completed")
			status, err := e.m.Status(ctx, "crash")
			require.NoError(t, err)
			require.False(t, status.SlotExists)
		})
	}
}

// A target's primary restarted while changes are applied: the stream
// retries, and the target ends with exactly its rows.
func TestTargetRestartDuringApply(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seed(t, 500)
	_, err := e.m.Create(ctx, e.spec("restart"))
	require.NoError(t, err)
	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	done := make(chan error, 1)
	go func() { done <- e.m.Run(runCtx, "restart") }()
	waitPhase(t, e, "restart", reshard.PhaseStreaming)
	stopWrites := e.writer(t, ctx, 4)
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, e.targets[0].Stop(ctx))
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, e.targets[0].Start(ctx))
	time.Sleep(200 * time.Millisecond)
	stopWrites()
	require.NoError(t, e.m.CatchUp(ctx, "restart", time.Minute))
	e.requireSame(t)
	kill()
	<-done
}

// The slot gone from the source (as a failover before PostgreSQL 17
// loses it): the workflow stops and says what to do, instead of skipping
// changes; status warns.
func TestSlotLostStops(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seed(t, 100)
	_, err := e.m.Create(ctx, e.spec("lost"))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- e.m.Run(ctx, "lost") }()
	waitPhase(t, e, "lost", reshard.PhaseStreaming)
	src := connectDSN(t, e.source, e.db)
	require.Eventually(t, func() bool {
		_, _ = src.Exec(ctx, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'pgshard_reshard_lost' AND active_pid IS NOT NULL")
		_, err := src.Exec(ctx, "SELECT pg_drop_replication_slot('pgshard_reshard_lost')")
		return err == nil
	}, 30*time.Second, 10*time.Millisecond)
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the workflow did not stop")
	}
	require.ErrorIs(t, err, reshard.ErrSlotLost)
	require.ErrorContains(t, err, "cancel it and create it again")
	status, err := e.m.Status(ctx, "lost")
	require.NoError(t, err)
	require.Contains(t, fmt.Sprint(status.Warnings), "the slot pgshard_reshard_lost is gone from the source")
	_, err = e.m.Cancel(ctx, "lost")
	require.NoError(t, err)
}
