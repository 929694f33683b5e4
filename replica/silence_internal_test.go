package replica

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closed reports whether ch is closed, waiting up to a second for it.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(time.Second):
		return false
	}
}

func TestAcquireCtx(t *testing.T) {
	t.Run("the caller's cancellation reaches a waiting pool", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		var a attempts
		c := a.next(parent)
		done := c.Done()
		assert.NoError(t, c.Err())
		cancel()
		require.True(t, closed(done))
		assert.ErrorIs(t, c.Err(), context.Canceled)
	})
	t.Run("the sweeper's cancellation, before and after Done", func(t *testing.T) {
		var a attempts
		c := a.next(context.Background())
		c.cancel(errNoAnswer)
		assert.ErrorIs(t, c.Err(), errNoAnswer)
		require.True(t, closed(c.Done()), "cancelled before the pool waited")

		c = a.next(context.Background())
		done := c.Done()
		c.cancel(errNoAnswer)
		c.cancel(context.Canceled) // the first cause stays
		require.True(t, closed(done))
		assert.ErrorIs(t, c.Err(), errNoAnswer)
	})
	t.Run("a context the pool may still hold is not reused", func(t *testing.T) {
		var a attempts
		first := a.next(context.Background())
		assert.Same(t, &a.actx, first, "unused: the one in the Rows")
		_ = first.Done()
		first.release()
		second := a.next(context.Background())
		assert.NotSame(t, first, second)
		assert.NoError(t, second.Err())
	})
	t.Run("released: the caller's later cancellation no longer reaches it", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		var a attempts
		c := a.next(parent)
		done := c.Done()
		c.release()
		cancel()
		select {
		case <-done:
			t.Fatal("a released context followed its caller's")
		case <-time.After(20 * time.Millisecond):
		}
	})
}
