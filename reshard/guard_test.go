package reshard_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
)

// During a move, TRUNCATE of a moving table is refused on the source,
// and a change to a moving table's columns stops the workflow with an
// error that names the table and what to do.
func TestTruncateRefusedAndDDLStops(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seed(t, 100)
	_, err := e.m.Create(ctx, e.spec("ddl"))
	require.NoError(t, err)
	done := make(chan error, 1)
	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	go func() { done <- e.m.Run(runCtx, "ddl") }()
	waitPhase(t, e, "ddl", reshard.PhaseStreaming)

	src := connectDSN(t, e.source, e.db)
	_, err = src.Exec(ctx, "TRUNCATE posts")
	require.ErrorContains(t, err, "TRUNCATE of public.posts refused: resharding workflow ddl is moving it")

	_, err = src.Exec(ctx, "ALTER TABLE users ADD COLUMN email text; INSERT INTO users VALUES (-1, 'new', 'a@b')")
	require.NoError(t, err)
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the workflow did not stop")
	}
	require.ErrorIs(t, err, reshard.ErrSchemaChanged)
	require.ErrorContains(t, err, "table users changed on the source during the move: its columns are now (id, name, email), the targets have (id, name)")
	st, err := e.m.Get(ctx, "ddl")
	require.NoError(t, err)
	require.Contains(t, st.Error, "table users changed")

	_, err = e.m.Cancel(ctx, "ddl")
	require.NoError(t, err)
	_, err = src.Exec(ctx, "TRUNCATE posts")
	require.NoError(t, err, "no guard once cancelled")
}
