package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
)

// A write sent to a primary that froze before answering, whose caller's
// deadline then passed, reports ErrOutcomeUnknown through the router (it
// may commit when the primary thaws), not only the deadline.
func TestRouterKeepsOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 1})
	require.NoError(t, err)
	defer c.Close()
	r := open(t, config(t, c))
	target := r.User(1)
	_, err = target.Exec(ctx, "CREATE TABLE outcome (id int PRIMARY KEY)")
	require.NoError(t, err)
	p := c.Shards()[0].Primary
	require.NoError(t, p.FreezeForTest(ctx, t))

	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = target.Exec(wctx, "INSERT INTO outcome VALUES (1)")
	cancel()
	require.Error(t, err)
	assert.ErrorIs(t, err, replica.ErrOutcomeUnknown, "Exec")
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	wctx, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
	err = target.Tx(wctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(wctx, "INSERT INTO outcome VALUES (2)")
		return err
	})
	cancel()
	require.Error(t, err)
	// The statement inside the transaction never got its answer, so COMMIT
	// was never sent: nothing was committed, and the error says only why.
	assert.NotErrorIs(t, err, replica.ErrOutcomeUnknown, "Tx whose COMMIT was never sent")
	require.NoError(t, p.Thaw(ctx))
}
