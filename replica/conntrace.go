package replica

import (
	"context"
	"errors"
	"time"
)

// TraceWrite reports to the set's Tracer the outcome of a write made on a
// connection lent by WriteConn: op names it in WriteEvent.Op (for
// instance "tx", "batch" or "copy"), c is the connection (nil if none
// could be had), began is when the write was asked for, lsn the commit's
// position if it was read, and err what the write returned (as Conn.Failed
// reports it). A nil err, or one wrapping ErrCommitLSN, is a commit; one
// wrapping ErrOutcomeUnknown an unknown outcome; any other a failure. Call
// it once per write; it does nothing without a Tracer.
func (s *Set) TraceWrite(ctx context.Context, op string, c *Conn, began time.Time, lsn LSN, err error) {
	if !s.tracing {
		return
	}
	out := WriteFailed
	switch {
	case err == nil, errors.Is(err, ErrCommitLSN):
		out = WriteCommitted
	case errors.Is(err, ErrOutcomeUnknown):
		out = WriteUnknown
	}
	var n *node
	if c != nil {
		n = c.t.n
	}
	s.traceWrite(ctx, op, n, began, 1, lsn, out, err)
}

// TraceRead reports to the set's Tracer a read made on a connection lent
// by ReadConn with options o, as one attempt: c is the connection (nil if
// none could be had), began when the read was asked for, and err what it
// returned (nil when it succeeded). Call it once per read; it does nothing
// without a Tracer.
func (s *Set) TraceRead(ctx context.Context, c *Conn, o ReadOptions, began time.Time, err error) {
	if !s.tracing {
		return
	}
	e := ReadEvent{Shard: s.name, Attempt: 1, MinLSN: o.MinLSN, Duration: time.Since(began), Err: err}
	if c != nil {
		e.Node, e.Role, e.Fallback, e.Lag = c.t.n.addr, c.served.Role, c.t.fallback, c.t.lag
	}
	s.trace.TraceRead(ctx, e)
}
