package replica

import (
	"context"
	"time"
)

// Tracer receives what a Set decides and what happens to its statements:
// each attempt of a read, each write's outcome, and each change in a node's
// health. It is how a service counts, logs or checks the library's
// behaviour; the library itself never decides that. Implementations must be
// safe for concurrent use and quick: they are called on the query path,
// after the decision they report and never under a lock of the Set.
//
// [TracerFuncs] adapts plain functions; set only the ones you need.
type Tracer interface {
	// TraceRead is called once per attempt of a read: when the attempt's
	// rows are closed, or when it failed.
	TraceRead(ctx context.Context, e ReadEvent)
	// TraceWrite is called once per write (Exec, ExecLSN, Tx) when its
	// outcome is known to the caller.
	TraceWrite(ctx context.Context, e WriteEvent)
	// TraceNode is called when the checker or a query changes what the set
	// believes of a node: its role, reachability, or place in rotation.
	TraceNode(e NodeEvent)
}

// Why a read went to the primary although it asked for a replica
// (ReadEvent.Fallback).
const (
	// FallbackNoneEligible: no replica's lag was proven within the bounds.
	FallbackNoneEligible = "none-eligible"
	// FallbackBehind: eligible replicas had not replayed the read's MinLSN
	// (read-your-writes) within Options.MaxWait.
	FallbackBehind = "behind"
	// FallbackRetry: the replica chosen first failed or did not answer in
	// time, and no other replica was eligible.
	FallbackRetry = "retry"
)

// ReadEvent is one attempt of a read.
type ReadEvent struct {
	Shard   string // the set's name
	Node    string // host:port/database of the node tried; "" if none was chosen
	Role    Role   // the node's role when chosen
	Attempt int    // 1 for the first send, 2 for a retry elsewhere
	// Fallback is why a read that could have gone to a replica went to the
	// primary (Fallback* constants); "" when it did not fall back or asked
	// for the primary.
	Fallback string
	// Lag is the bound on the chosen replica's lag when it was chosen: its
	// measured lag plus the age of that measure. Zero for a primary.
	Lag      time.Duration
	MinLSN   LSN           // the read-your-writes position the read needed, if any
	Duration time.Duration // from the attempt's start to its end
	Err      error         // nil when the attempt succeeded
}

// WriteOutcome says what is known of a write.
type WriteOutcome int

const (
	// WriteCommitted: the server answered that the write committed (or, for
	// a statement outside a transaction, that it ran).
	WriteCommitted WriteOutcome = iota
	// WriteFailed: nothing was committed.
	WriteFailed
	// WriteUnknown: the answer was lost after the commit may have run; see
	// ErrOutcomeUnknown.
	WriteUnknown
)

// String returns "committed", "failed" or "unknown".
func (o WriteOutcome) String() string {
	switch o {
	case WriteCommitted:
		return "committed"
	case WriteFailed:
		return "failed"
	}
	return "unknown"
}

// WriteEvent is the outcome of one write.
type WriteEvent struct {
	Shard    string // the set's name
	Node     string // host:port/database of the primary; "" if there was none
	Op       string // "exec", "exec-lsn" or "tx"; for work on a lent connection (Set.TraceWrite), what its caller says: the router reports "tx", "batch" and "copy"
	Outcome  WriteOutcome
	Attempts int           // sends; more than one only when nothing reached the server before
	LSN      LSN           // the commit's WAL position, for exec-lsn and tx
	Duration time.Duration // from the call to its outcome
	Err      error         // nil when committed
}

// NodeEventKind is what changed for a node.
type NodeEventKind int

const (
	// NodeRole: the node reported another role (a promotion, a demotion).
	NodeRole NodeEventKind = iota + 1
	// NodeUnreachable: the node stopped answering, or a query saw it down.
	NodeUnreachable
	// NodeReachable: the node answers again.
	NodeReachable
	// NodeEjected: a replica left rotation (Reason says why).
	NodeEjected
	// NodeAdmitted: a replica entered rotation with the lag figures given.
	NodeAdmitted
	// NodeRefused: a replica was refused because it is not proven to follow
	// this set's primary (Err says what it follows instead).
	NodeRefused
)

// String returns the kind as one word.
func (k NodeEventKind) String() string {
	switch k {
	case NodeRole:
		return "role"
	case NodeUnreachable:
		return "unreachable"
	case NodeReachable:
		return "reachable"
	case NodeEjected:
		return "ejected"
	case NodeAdmitted:
		return "admitted"
	case NodeRefused:
		return "refused"
	}
	return "unknown"
}

// NodeEvent is a change in what the set believes of one node.
type NodeEvent struct {
	Shard    string
	Node     string
	Kind     NodeEventKind
	Role     Role          // the role now
	WasRole  Role          // the role before, for NodeRole
	Reason   string        // for NodeEjected: one of the Reason* constants
	Lag      time.Duration // the lag bound that decided, for NodeEjected and NodeAdmitted
	LagKnown bool
	LagBytes int64
	Err      string // the error that decided, if any
}

// TracerFuncs is a Tracer made of optional functions; a nil field ignores
// its events.
type TracerFuncs struct {
	Read  func(context.Context, ReadEvent)
	Write func(context.Context, WriteEvent)
	Node  func(NodeEvent)
}

// TraceRead calls f.Read if set.
func (f TracerFuncs) TraceRead(ctx context.Context, e ReadEvent) {
	if f.Read != nil {
		f.Read(ctx, e)
	}
}

// TraceWrite calls f.Write if set.
func (f TracerFuncs) TraceWrite(ctx context.Context, e WriteEvent) {
	if f.Write != nil {
		f.Write(ctx, e)
	}
}

// TraceNode calls f.Node if set.
func (f TracerFuncs) TraceNode(e NodeEvent) {
	if f.Node != nil {
		f.Node(e)
	}
}

// noTracer is the Tracer of a set that has none.
type noTracer struct{}

func (noTracer) TraceRead(context.Context, ReadEvent)   {}
func (noTracer) TraceWrite(context.Context, WriteEvent) {}
func (noTracer) TraceNode(NodeEvent)                    {}
