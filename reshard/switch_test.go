package reshard_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/shard"
)

type post struct{ user, id int64 }

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
