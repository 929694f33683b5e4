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

func silentNode() *node {
	n := &node{}
	ch := make(chan struct{})
	n.silence.Store(&ch)
	return n
}

func TestAcquireCtx(t *testing.T) {
	t.Run("under a context that never ends, it ends when the node falls silent", func(t *testing.T) {
		n := silentNode()
		var a attempts
		c := a.next(context.Background(), n)
		done := c.Done()
		require.NotNil(t, done)
		assert.NoError(t, c.Err())
		assert.False(t, c.silenced())
		n.markSilent(true)
		require.True(t, closed(done))
		assert.ErrorIs(t, c.Err(), errNoAnswer)
		assert.True(t, c.silenced())

		n.markSilent(false)
		c = a.next(context.Background(), n)
		assert.NoError(t, c.Err(), "the node answers again: a new acquire waits")
	})
	t.Run("the caller's cancellation reaches a waiting pool", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		var a attempts
		c := a.next(parent, silentNode())
		done := c.Done()
		assert.NoError(t, c.Err())
		cancel()
		require.True(t, closed(done))
		assert.ErrorIs(t, c.Err(), context.Canceled)
	})
	t.Run("the sweeper's cancellation, before and after Done", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		defer cancel()
		var a attempts
		c := a.next(parent, silentNode())
		c.cancel(errNoAnswer)
		assert.ErrorIs(t, c.Err(), errNoAnswer)
		require.True(t, closed(c.Done()), "cancelled before the pool waited")
		c.release(true)

		c = a.next(parent, silentNode())
		done := c.Done()
		c.cancel(errNoAnswer)
		c.cancel(context.Canceled) // the first cause stays
		require.True(t, closed(done))
		assert.ErrorIs(t, c.Err(), errNoAnswer)
	})
	t.Run("a context the pool may still hold is not reused", func(t *testing.T) {
		var a attempts
		first := a.next(context.Background(), silentNode())
		assert.Same(t, &a.actx, first, "unused: the one in the Rows")
		first.release(false)
		assert.Same(t, &a.actx, a.next(context.Background(), silentNode()), "an acquire that succeeded leaves it free")
		a.actx.release(true)
		second := a.next(context.Background(), silentNode())
		assert.NotSame(t, &a.actx, second)
		assert.NoError(t, second.Err())
	})
	t.Run("released: the caller's later cancellation no longer reaches it", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		var a attempts
		c := a.next(parent, silentNode())
		done := c.Done()
		c.release(false)
		cancel()
		select {
		case <-done:
			t.Fatal("a released context followed its caller's")
		case <-time.After(20 * time.Millisecond):
		}
	})
}
