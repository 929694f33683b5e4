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

// An UPDATE that leaves a TOASTed value unchanged sends no value for it
// ('u' in pgoutput): the target keeps its own, even when the primary key
// changes.
func TestUnchangedToastKept(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	src := connectDSN(t, e.source, e.db)
	_, err := src.Exec(ctx, `INSERT INTO users VALUES (7, 'seven');
		INSERT INTO posts SELECT 7, 1, string_agg(md5(random()::text), '') FROM generate_series(1, 2000)`)
	require.NoError(t, err)
	var external bool
	require.NoError(t, src.QueryRow(ctx, `SELECT pg_column_size(body) > 2000 FROM posts WHERE id = 1`).Scan(&external))
	require.True(t, external, "the body is stored out of line (TOAST)")
	_, err = e.m.Create(ctx, e.spec("toast"))
	require.NoError(t, err)
	runCtx, kill := context.WithCancel(ctx)
	defer kill()
	done := make(chan error, 1)
	go func() { done <- e.m.Run(runCtx, "toast") }()
	waitPhase(t, e, "toast", reshard.PhaseStreaming)

	_, err = src.Exec(ctx, `UPDATE posts SET id = 2 WHERE user_id = 7 AND id = 1; UPDATE users SET name = 'seven!' WHERE id = 7`)
	require.NoError(t, err)
	require.NoError(t, e.m.CatchUp(ctx, "toast", time.Minute))
	e.requireSame(t)
	kill()
	require.ErrorIs(t, <-done, context.Canceled)
}
