package reshard_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/shard"
)

// Verify under writes finds the targets equal to the source at one
// position; a row changed behind the workflow's back is named.
func TestVerify(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seed(t, 2000)
	_, err := e.m.Create(ctx, e.spec("check"))
	require.NoError(t, err)
	_, err = e.m.Verify(ctx, "check", reshard.VerifyOptions{})
	require.ErrorIs(t, err, reshard.ErrPhase, "nothing to compare before the copy")

	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	done := make(chan error, 1)
	go func() { done <- e.m.Run(runCtx, "check") }()
	stopWrites := e.writer(t, ctx, 3)
	waitPhase(t, e, "check", reshard.PhaseStreaming)

	began := time.Now()
	rep, err := e.m.Verify(ctx, "check", reshard.VerifyOptions{Timeout: time.Minute})
	t.Logf("verify under writes: %v", time.Since(began))
	require.NoError(t, err)
	require.True(t, rep.Clean(), "%+v", rep.Diffs)
	require.Len(t, rep.Tables, 3)
	for _, tc := range rep.Tables {
		require.Equal(t, tc.Source, tc.Targets, "table %s", tc.Table)
	}
	stopWrites()

	// users 5 is never written by the writer: change it on its target.
	owner := 0
	if !e.ranges[0].Contains(shard.HashInt64(5)) {
		owner = 1
	}
	tc := connectDSN(t, e.targets[owner], e.db)
	_, err = tc.Exec(ctx, "UPDATE users SET name = 'changed' WHERE id = 5")
	require.NoError(t, err)
	rep, err = e.m.Verify(ctx, "check", reshard.VerifyOptions{Timeout: time.Minute})
	require.NoError(t, err)
	require.False(t, rep.Clean())
	require.Len(t, rep.Diffs, 1, "%+v", rep.Diffs)
	require.Equal(t, reshard.Diff{Table: "users", Target: []string{"-80", "80-"}[owner], Key: "(5)", Problem: "the row differs"}, rep.Diffs[0])

	// And a row missing from a target.
	_, err = tc.Exec(ctx, "UPDATE users SET name = 'user 5' WHERE id = 5; DELETE FROM countries WHERE code = 'c3'")
	require.NoError(t, err)
	rep, err = e.m.Verify(ctx, "check", reshard.VerifyOptions{Timeout: time.Minute})
	require.NoError(t, err)
	require.Len(t, rep.Diffs, 1, "%+v", rep.Diffs)
	require.Equal(t, "countries", rep.Diffs[0].Table)
	require.Equal(t, "(c3)", rep.Diffs[0].Key)

	st, err := e.m.Get(ctx, "check")
	require.NoError(t, err)
	require.Empty(t, st.Hold, "verify lifts its hold")
	kill()
	require.ErrorIs(t, <-done, context.Canceled)
}
