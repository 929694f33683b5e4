package replica

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A replica that stops answering (frozen, cut off) must cost a read about
// AttemptTimeout, not the caller's whole deadline. Rather than a timer per
// read, each node keeps the list of what waits on it (a read sent on one of
// its connections, a connection's handshake, a probe), oldest first, and
// one sweeper per set gives up on what has waited AttemptTimeout on a node
// that has answered no check for as long: a read's connection is broken
// with a past deadline, which costs pgx nothing while it does not fire (a
// cancellable context would cost it a goroutine per query); an acquire is
// cancelled. Registering a read costs one short lock and no allocation:
// the waiter lives in the Rows.

// errNoAnswer names an attempt given up on because its node answered
// neither it nor any check for AttemptTimeout.
var errNoAnswer = errors.New("node did not answer in time")

// waiter is one thing waiting on a node's answer: a read sent on one of
// its connections, or a connection being acquired from its pool (which
// may wait for a slot held by reads on the silent node, or for a
// handshake it never answers).
type waiter struct {
	prev, next *waiter
	since      time.Duration // set clock instant it began to wait
	conn       net.Conn      // broken with a past deadline to give up, or
	ctx        *acquireCtx   // cancelled to give up
	fired      atomic.Bool   // the sweeper gave up on it
	listed     bool          // in a list; guarded by the list's lock
}

// waiters is a node's list of waiters, oldest first.
type waiters struct {
	mu         sync.Mutex
	head, tail *waiter
}

// wait starts w waiting on n: on its connection c, or an acquire under
// ctx.
func (s *Set) wait(n *node, w *waiter, c net.Conn, ctx *acquireCtx) {
	w.conn, w.ctx, w.since, w.prev, w.next = c, ctx, s.clock(), nil, nil
	w.fired.Store(false)
	l := &n.waiting
	l.mu.Lock()
	if l.tail == nil {
		l.head = w
	} else {
		l.tail.next, w.prev = w, l.tail
	}
	l.tail, w.listed = w, true
	l.mu.Unlock()
}

// done ends w's wait on n; it reports whether the sweeper gave up on it.
// After done the sweeper no longer touches w's connection.
func (n *node) done(w *waiter) bool {
	l := &n.waiting
	l.mu.Lock()
	if w.listed {
		if w.prev == nil {
			l.head = w.next
		} else {
			w.prev.next = w.next
		}
		if w.next == nil {
			l.tail = w.prev
		} else {
			w.next.prev = w.prev
		}
		w.prev, w.next, w.listed = nil, nil, false
	}
	l.mu.Unlock()
	return w.fired.Load()
}

// sweep gives up on what has waited AttemptTimeout on a replica that has
// answered no check for as long. The primary is waited for: it has no
// other node to turn to.
func (s *Set) sweep() {
	now := s.clock()
	for _, n := range s.nodes {
		st := n.status()
		silent := st.role != RolePrimary && now-st.lastGood >= s.attempt
		n.markSilent(silent)
		if !silent {
			continue
		}
		l := &n.waiting
		l.mu.Lock()
		for w := l.head; w != nil && now-w.since >= s.attempt; w = w.next {
			if w.fired.Swap(true) {
				continue
			}
			if w.conn != nil {
				_ = w.conn.SetDeadline(time.Unix(1, 0))
			} else {
				w.ctx.cancel(errNoAnswer)
			}
		}
		l.mu.Unlock()
	}
}

// markSilent closes n's silence channel when it falls silent, and makes a
// new one when it answers again. Only the sweeper calls it.
func (n *node) markSilent(silent bool) {
	if silent == n.silenced {
		return
	}
	n.silenced = silent
	if silent {
		close(*n.silence.Load())
		return
	}
	ch := make(chan struct{})
	n.silence.Store(&ch)
}

// sweepEvery runs sweep ten times per AttemptTimeout until ctx ends, so
// an attempt is given up on between AttemptTimeout and a tenth more after
// it began.
func (s *Set) sweepEvery(ctx context.Context) {
	t := time.NewTicker(max(s.attempt/10, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// attempts is what the attempts of one read reuse, so that watching them
// allocates nothing: it lives in the Rows.
type attempts struct {
	acquiring waiter
	actx      acquireCtx
}

// acquireCtx is the context a replica's connection is acquired under: the
// caller's, which the sweeper can also end, for an acquire that waits (for
// a slot held by reads stuck on a silent node, for a handshake it never
// answers). Under a caller's context that never ends, its Done is the
// node's silence channel, which the sweeper closes once the node has
// answered no check for AttemptTimeout: that costs a read nothing.
// Otherwise its channel is made, and tied to the caller's, when the pool
// first asks for it. A context.WithCancelCause per read cost a loopback
// point read about 5% (BENCHMARKS.md).
type acquireCtx struct {
	context.Context                 // the caller's
	silent          <-chan struct{} // the node's, when the caller's never ends

	mu   sync.Mutex
	done chan struct{} // made by the first Done
	err  error         // why it was cancelled
	stop func() bool   // unties done from the caller's context
	used bool          // the pool may hold it after the acquire
}

// next returns the context for an acquire on n under parent: the one in
// a, unless the pool may still hold it from the last.
func (a *attempts) next(parent context.Context, n *node) *acquireCtx {
	c := &a.actx
	if c.used {
		c = new(acquireCtx)
	}
	c.Context, c.silent, c.done, c.err, c.stop = parent, nil, nil, nil, nil
	if parent.Done() == nil {
		c.silent = *n.silence.Load()
	}
	return c
}

func (c *acquireCtx) Done() <-chan struct{} {
	if c.silent != nil {
		return c.silent
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.used = true
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		} else {
			parent := c.Context
			c.stop = context.AfterFunc(parent, func() { c.cancel(parent.Err()) })
		}
	}
	return c.done
}

func (c *acquireCtx) Err() error {
	if c.silent != nil {
		select {
		case <-c.silent:
			return errNoAnswer
		default:
			return nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return c.Context.Err()
}

// cancel ends the context with err, unless it has ended.
func (c *acquireCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
}

// release unties the context from the caller's once the acquire is over;
// failed is whether it failed, and the pool may so still hold it.
func (c *acquireCtx) release(failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	if failed {
		c.used = true
	}
}

// silenced reports whether the node was silent for AttemptTimeout, per
// its silence channel, during an acquire under c.
func (c *acquireCtx) silenced() bool {
	if c.silent == nil {
		return false
	}
	select {
	case <-c.silent:
		return true
	default:
		return false
	}
}
