package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReadOptions say which nodes may serve a read. The zero value reads from an
// eligible replica, falling back as Options.Fallback says.
type ReadOptions struct {
	// MinLSN, if set, sends the read only to a node that has replayed this
	// position (read-your-writes): a replica known or probed to be there,
	// else the primary.
	MinLSN LSN
	// Primary sends the read to the primary.
	Primary bool
	// Observe asks for the WAL position the read saw, reported by
	// Rows.Served after Close (monotonic reads). It adds one tiny statement
	// to the same round trip.
	Observe bool
	// Done, if set, is called once when the read's rows are closed
	// (explicitly, or by the last Next), with who served it. A read that
	// fails before any node is chosen does not call it.
	Done func(Served)
}

// Served says which node answered a read and, with ReadOptions.Observe,
// the WAL position it had reached when the read finished.
type Served struct {
	Node string // host:port/database
	Role Role
	LSN  LSN // with Observe: an upper bound of what the read saw; else 0
}

// MaxAttempts is the most sends one read makes: the first, and one retry
// on another node when the first failed at the connection level or did not
// answer in time before returning a row.
const MaxAttempts = 2

// observeSQL reports a position that is at least every change the
// preceding statement of the same batch could see.
const observeSQL = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text`

// probeSQL asks a replica how far it has replayed. A node promoted since
// its last check answers with its own position: it has everything it ever
// replayed, and everything written on it since.
const probeSQL = observeSQL

// Query runs a read on an eligible replica (or as Options.Fallback says).
func (s *Set) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r, err := s.Read(ctx, ReadOptions{}, sql, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// QueryRow runs a read expected to return at most one row.
func (s *Set) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return s.ReadRow(ctx, ReadOptions{}, sql, args...)
}

// ReadRow is QueryRow with read options; Row.Served tells who answered.
func (s *Set) ReadRow(ctx context.Context, o ReadOptions, sql string, args ...any) *Row {
	rows, err := s.Read(ctx, o, sql, args...)
	return &Row{rows: rows, err: err}
}

// Read runs a read where o allows. It makes at most MaxAttempts sends.
func (s *Set) Read(ctx context.Context, o ReadOptions, sql string, args ...any) (*Rows, error) {
	r := &Rows{set: s, ctx: ctx, opts: o, sql: sql, args: args}
	if err := r.start(nil); err != nil {
		return nil, err
	}
	return r, nil
}

// target is a node chosen for a read, with a connection acquired from it.
type target struct {
	n        *node
	conn     *pgxpool.Conn
	fallback string        // why a replica read went to the primary, "" if it did not
	lag      time.Duration // the bound on a replica's lag when chosen
}

// route chooses the node for a read and acquires a connection on it: the
// read plan. In order: the primary if asked for; an eligible replica that
// has MinLSN (two random choices, fewer outstanding queries per weight);
// one that is eligible but behind MinLSN, probed and waited for up to
// MaxWait; then the primary as Options.Fallback allows. It skips avoid, a
// node that has just failed. A replica whose connection cannot be
// acquired is skipped; that is not a send of the read.
func (s *Set) route(ctx context.Context, o ReadOptions, avoid *node, a *attempts) (target, error) {
	if s.closed.Load() {
		return target{}, setError(s.name, ErrClosed)
	}
	if o.Primary {
		p, err := s.writer()
		if err != nil {
			return target{}, err
		}
		return s.acquire(ctx, p, "")
	}
	why := FallbackNoneEligible
	if avoid != nil {
		why = FallbackRetry
	}
	// A read the primary has just failed waits for a replica that is
	// behind its position as it would with no primary, until a check
	// after the failure finds the primary answering: a primary shutting
	// down ends its sessions before any check sees it go.
	doubt := noDoubt
	if avoid != nil && avoid.status().role == RolePrimary {
		doubt = s.clock()
	}
	var lastBehind *node // eligible but behind MinLSN
	waited := false      // a probe of it waited as with no primary
	for range len(s.nodes) {
		now := s.clock()
		chosen, behind := s.pick(now+s.margin, o.MinLSN, avoid)
		if chosen != nil {
			t, err := s.acquireWatched(ctx, chosen, a)
			if err == nil && !s.stillEligible(chosen) {
				// Acquiring took long enough (a busy pool, a slow dial)
				// for the replica's bound to pass MaxLag: choose again.
				t.release()
				avoid = chosen
				continue
			}
			if err == nil {
				t.lag = chosen.status().lag(s.clock())
				return t, nil
			}
			if !classify(ctx, err).retryable() {
				return target{}, err
			}
			avoid, why = chosen, FallbackRetry
			continue
		}
		if behind != nil {
			lastBehind = behind
			_, werr := s.writer()
			patient := werr != nil || doubt != noDoubt
			waited = waited || patient
			t, ok, err := s.probe(ctx, behind, o.MinLSN, patient, doubt, a)
			if ok {
				return t, nil
			}
			if err != nil && !classify(ctx, err).retryable() {
				return target{}, err
			}
			avoid, why = behind, FallbackBehind
			if err == nil {
				break // caught up nowhere: go to the primary
			}
			continue
		}
		break
	}
	t, err := s.fallbackTarget(ctx, why)
	if err == nil || lastBehind == nil || waited || !(errors.Is(err, errPrimaryFailed) || errors.Is(err, ErrNoPrimary)) {
		return t, err
	}
	// The primary failed the fallback (refused, shutting down), or was
	// found down since the replica was probed: the replica that was only
	// behind is the read's one chance.
	t, ok, perr := s.probe(ctx, lastBehind, o.MinLSN, true, s.clock(), a)
	if ok {
		return t, nil
	}
	if perr != nil && !classify(ctx, perr).retryable() {
		return target{}, perr
	}
	return target{}, err
}

// noDoubt says that no failure of the primary makes a read wait for a
// replica.
const noDoubt time.Duration = -1

// errPrimaryFailed marks a fallback read that could not reach the primary.
var errPrimaryFailed = errors.New("primary failed")

// fallbackTarget sends a read that found no replica to the primary, if
// Options.Fallback and its rate cap allow, or says why not.
func (s *Set) fallbackTarget(ctx context.Context, why string) (target, error) {
	if err := ctx.Err(); err != nil {
		return target{}, setError(s.name, err)
	}
	if s.opts.Fallback == FallbackError {
		s.rejected.Add(1)
		return target{}, setError(s.name, fmt.Errorf("%w (%s)", ErrNoReplica, s.whyNoReplica()))
	}
	p, err := s.writer()
	if err != nil {
		s.rejected.Add(1)
		return target{}, setError(s.name, fmt.Errorf("%w (%s), and %w", ErrNoReplica, s.whyNoReplica(), errors.Unwrap(err)))
	}
	if !s.fallback.allow() {
		s.rejected.Add(1)
		return target{}, setError(s.name, fmt.Errorf("%w: primary fallback above %g reads/s", ErrNoReplica, s.opts.MaxFallbackRate))
	}
	t, err := s.acquire(ctx, p, why)
	if err != nil && classify(ctx, err).retryable() {
		err = failedPrimary{err}
	}
	return t, err
}

// failedPrimary is a retryable failure to reach the primary for a
// fallback read; it reads as the error it wraps.
type failedPrimary struct{ error }

func (e failedPrimary) Unwrap() error        { return e.error }
func (e failedPrimary) Is(target error) bool { return target == errPrimaryFailed }

// whyNoReplica says, for an error, why each replica may not serve.
func (s *Set) whyNoReplica() string {
	now := s.clock() + s.margin // as pick judged
	var b strings.Builder
	for _, n := range s.nodes {
		st := n.status()
		if st.role == RolePrimary {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		why := s.reason(st, now)
		if why == "" {
			// Eligible, but it has not replayed the read's MinLSN.
			why = "behind the read's position"
		}
		fmt.Fprintf(&b, "%s %s", n.addr, why)
		switch {
		case why == ReasonLagging:
			fmt.Fprintf(&b, " %s behind (bound %s)", st.lag(now).Round(time.Millisecond), s.opts.MaxLag)
		case st.err != "":
			fmt.Fprintf(&b, ": %s", st.err)
		}
	}
	if b.Len() == 0 {
		return "no replicas"
	}
	return b.String()
}

// probe asks a replica whose last known position is older than min where
// it is now, waiting up to MaxWait for it to get there. ok reports that the
// returned connection sees min; on !ok with a nil error, the replica is
// behind.
//
// A patient probe (no primary to fall back to, or one in doubt since
// instant doubt: it failed this read then; noDoubt for none) waits up to
// ConnectTimeout instead: a replica that has received a write but not
// replayed it yet usually gets there within milliseconds, and waiting
// beats failing the read. It stops waiting when a primary is back, proven
// by a check after the doubt.
func (s *Set) probe(ctx context.Context, n *node, min LSN, patient bool, doubt time.Duration, a *attempts) (t target, ok bool, err error) {
	t, err = s.acquireWatched(ctx, n, a)
	if err != nil {
		return t, false, err
	}
	wait := s.opts.MaxWait
	if patient {
		wait = max(wait, s.opts.ConnectTimeout)
	}
	deadline := time.Now().Add(wait)
	for {
		var text string
		err := s.watched(n, t.conn, func() error { return t.conn.QueryRow(ctx, probeSQL).Scan(&text) })
		if err != nil {
			t.release()
			if cls := classify(ctx, err); cls.retryable() {
				s.nodeFailed(n, cls, err)
			}
			return target{}, false, setError(s.name, fmt.Errorf("node %s: %w", n.addr, err))
		}
		at, err := ParseLSN(text)
		if err != nil {
			t.release()
			return target{}, false, err
		}
		s.sawLSN(n, at)
		if at >= min && !s.stillEligible(n) {
			t.release()
			return target{}, false, nil
		}
		if at >= min {
			t.lag = n.status().lag(s.clock())
			return t, true, nil
		}
		if !time.Now().Before(deadline) {
			t.release()
			return target{}, false, nil
		}
		if patient && s.opts.MaxWait == 0 {
			if p, err := s.writer(); err == nil && p.status().checked > doubt {
				// A primary is back (or promoted): read there instead.
				t.release()
				return target{}, false, nil
			}
		}
		select {
		case <-ctx.Done():
			t.release()
			return target{}, false, setError(s.name, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// stillEligible reports whether n may still serve a replica read now, when
// the read is about to be sent: its staleness is judged at the send, not
// only when it was chosen, with the set's margin for the moments between
// this check and the server taking its snapshot.
func (s *Set) stillEligible(n *node) bool { return s.clock()+s.margin <= n.status().until }

// sawLSN records a replica's position seen by a query.
func (s *Set) sawLSN(n *node, at LSN) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := *n.status()
	if at > st.lsn {
		st.lsn = at
		n.st.Store(&st)
	}
}

// acquire takes a connection from n's pool, bounded by ctx only: for the
// primary, which has no other node to turn to, a slow acquire is waited
// for (writes bound it by ConnectTimeout).
func (s *Set) acquire(ctx context.Context, n *node, fallback string) (target, error) {
	n.outstanding.Add(1)
	conn, err := n.pool.Acquire(ctx)
	if err != nil {
		n.outstanding.Add(-1)
		if cls := classify(ctx, err); cls.retryable() {
			s.nodeFailed(n, cls, err)
		}
		return target{}, setError(s.name, fmt.Errorf("node %s: %w", n.addr, err))
	}
	return target{n: n, conn: conn, fallback: fallback}, nil
}

func (t target) release() {
	t.conn.Release()
	t.n.outstanding.Add(-1)
}

// nodeFailed records a connection failure seen by a query and has the
// checker look at every node now, on fresh connections where sessions
// were lost. A replica leaves rotation until a check admits it again; a
// primary keeps taking writes unless the failure was a refusal (see
// core.queryFailed).
func (s *Set) nodeFailed(n *node, cls errClass, err error) {
	n.failures.Add(1)
	s.mu.Lock()
	before := *n.status()
	after := s.core.queryFailed(before, cleanError(err), cls == errDown)
	n.st.Store(&after)
	s.mu.Unlock()
	if before.admitted && !after.admitted {
		s.report([]NodeEvent{{Node: s.indexOf(n), Kind: NodeEjected, Role: after.role, Reason: ReasonUnreachable, Err: after.err}})
	}
	s.kickCheck()
}

func (s *Set) indexOf(n *node) string {
	for i, m := range s.nodes {
		if m == n {
			return fmt.Sprint(i)
		}
	}
	return "0"
}

// acquireWatched takes a connection from a replica's pool as a waiter the
// sweeper may give up on: a node that stopped answering (a handshake that
// hangs, a slot held by reads stuck on it) costs about AttemptTimeout,
// and the read turns to another node.
func (s *Set) acquireWatched(ctx context.Context, n *node, a *attempts) (target, error) {
	actx := a.next(ctx, n)
	if actx.silent != nil {
		t, err := s.acquire(actx, n, "")
		actx.release(err != nil)
		if err != nil && ctx.Err() == nil && actx.silenced() {
			err = setError(s.name, fmt.Errorf("node %s: %w (%s)", n.addr, errNoAnswer, s.attempt))
		}
		return t, err
	}
	s.wait(n, &a.acquiring, nil, actx)
	t, err := s.acquire(actx, n, "")
	fired := n.done(&a.acquiring)
	actx.release(err != nil)
	if fired && err != nil && ctx.Err() == nil {
		err = setError(s.name, fmt.Errorf("node %s: %w (%s)", n.addr, errNoAnswer, s.attempt))
	}
	return t, err
}

// watched runs f, a wait on n's connection c, as a waiter the sweeper may
// give up on.
func (s *Set) watched(n *node, c *pgxpool.Conn, f func() error) error {
	w := new(waiter)
	s.wait(n, w, c.Conn().PgConn().Conn(), nil)
	err := f()
	if n.done(w) && err != nil {
		err = fmt.Errorf("node %s: %w (%s): %w", n.addr, errNoAnswer, s.attempt, err)
	}
	return err
}
