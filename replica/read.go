package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// observeSQL reports a position that is at least every change the
// preceding statement of the same batch could see.
const observeSQL = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text`

// probeSQL asks a replica how far it has replayed. A node promoted since
// its last check answers with its own position: it has everything it ever
// replayed, and everything written on it since.
const probeSQL = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text`

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

// Read runs a read where o allows. A read that fails at the connection
// level before returning anything is retried once on another node.
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
	fallback bool
}

// route chooses the node for a read and acquires a connection on it. It
// skips avoid, a node that has just failed.
func (s *Set) route(ctx context.Context, o ReadOptions, avoid *node) (target, error) {
	if s.closed.Load() {
		return target{}, setError(s.name, ErrClosed)
	}
	if o.Primary {
		p, err := s.writer()
		if err != nil {
			return target{}, err
		}
		return s.acquire(ctx, p, false)
	}
	for range 2 {
		chosen, behind := s.pick(s.clock(), o.MinLSN, avoid)
		if chosen != nil {
			t, err := s.acquire(ctx, chosen, false)
			if err == nil || !connLevel(ctx, err) {
				return t, err
			}
			avoid = chosen
			continue
		}
		if behind != nil {
			t, ok, err := s.probe(ctx, behind, o.MinLSN)
			if ok || (err != nil && !connLevel(ctx, err)) {
				return t, err
			}
			avoid = behind
			if err == nil {
				break // caught up nowhere: go to the primary
			}
			continue
		}
		break
	}
	if o.MinLSN > 0 {
		if t, ok := s.lastResort(ctx, o.MinLSN, avoid); ok {
			return t, nil
		}
	}
	return s.fallbackTarget(ctx)
}

// lastResort serves a read-your-writes read while no node takes writes:
// the primary is gone, so no newer write can exist than what the replicas
// received, and a replica that has replayed min holds the session's
// writes. It probes the reachable replica furthest ahead, waiting for it
// to replay min, even if it is out of rotation (a replica that was behind
// when the primary went away is, until it catches up).
func (s *Set) lastResort(ctx context.Context, min LSN, avoid *node) (target, bool) {
	if _, err := s.writer(); err == nil {
		return target{}, false
	}
	var best *node
	for _, n := range s.nodes {
		st := n.status()
		if n == avoid || st.role != RoleReplica || !st.reachable {
			continue
		}
		if best == nil || st.lsn > best.status().lsn {
			best = n
		}
	}
	if best == nil {
		return target{}, false
	}
	t, ok, err := s.probe(ctx, best, min)
	if err != nil || !ok {
		return target{}, false
	}
	return t, true
}

func (s *Set) fallbackTarget(ctx context.Context) (target, error) {
	if s.opts.Fallback == FallbackError {
		s.rejected.Add(1)
		return target{}, setError(s.name, ErrNoReplica)
	}
	p, err := s.writer()
	if err != nil {
		s.rejected.Add(1)
		return target{}, setError(s.name, fmt.Errorf("%w, and %w", ErrNoReplica, errors.Unwrap(err)))
	}
	if !s.fallback.allow() {
		s.rejected.Add(1)
		return target{}, setError(s.name, fmt.Errorf("%w: primary fallback above %g reads/s", ErrNoReplica, s.opts.MaxFallbackRate))
	}
	return s.acquire(ctx, p, true)
}

// probe asks a replica whose last known position is older than min where
// it is now, waiting up to MaxWait for it to get there. ok reports that the
// returned connection sees min; on !ok with a nil error, the replica is
// behind.
//
// With no primary to fall back to, it waits up to ConnectTimeout instead:
// a replica that has received a write but not replayed it yet usually gets
// there within milliseconds, and waiting beats failing the read.
func (s *Set) probe(ctx context.Context, n *node, min LSN) (t target, ok bool, err error) {
	t, err = s.acquire(ctx, n, false)
	if err != nil {
		return t, false, err
	}
	wait := s.opts.MaxWait
	_, werr := s.writer()
	noPrimary := werr != nil
	if noPrimary {
		wait = max(wait, s.opts.ConnectTimeout)
	}
	deadline := s.now().Add(wait)
	for {
		var text string
		if err := t.conn.QueryRow(ctx, probeSQL).Scan(&text); err != nil {
			t.release()
			if connLevel(ctx, err) {
				s.nodeFailed(n, err)
			}
			return target{}, false, err
		}
		at, err := ParseLSN(text)
		if err != nil {
			t.release()
			return target{}, false, err
		}
		n.update(func(st status) status {
			st.lsn = max(st.lsn, at)
			return st
		})
		if at >= min {
			return t, true, nil
		}
		if !s.now().Before(deadline) {
			t.release()
			return target{}, false, nil
		}
		if noPrimary && s.opts.MaxWait == 0 {
			if _, err := s.writer(); err == nil {
				// A primary is back (or promoted): read there instead.
				t.release()
				return target{}, false, nil
			}
		}
		select {
		case <-ctx.Done():
			t.release()
			return target{}, false, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (s *Set) acquire(ctx context.Context, n *node, fallback bool) (target, error) {
	n.outstanding.Add(1)
	conn, err := n.pool.Acquire(ctx)
	if err != nil {
		n.outstanding.Add(-1)
		if connLevel(ctx, err) {
			s.nodeFailed(n, err)
		}
		return target{}, setError(s.name, fmt.Errorf("node %s: %w", n.addr, err))
	}
	return target{n: n, conn: conn, fallback: fallback}, nil
}

func (t target) release() {
	t.conn.Release()
	t.n.outstanding.Add(-1)
}

// nodeFailed records a connection failure seen by a query. A node that is
// down (not merely slow) leaves rotation now rather than at the next check:
// a replica is ejected; a primary is marked unreachable, so that the writes
// behind this one fail fast and read-your-writes reads turn to the replicas
// until the checker sees it again.
func (s *Set) nodeFailed(n *node, err error) {
	n.failures.Add(1)
	if !nodeDown(err) {
		return
	}
	replica := n.status().role == RoleReplica
	if n.eject(s.now(), cleanError(err)) && replica {
		s.log.Warn("replica ejected", "node", n.addr, "reason", ReasonUnreachable, "err", cleanError(err))
	}
}

// ConnError reports whether err is a failure to reach or talk to a node
// (refused, reset, timed out, shutting down) rather than an error the
// server returned for the statement. A read that failed so can be run
// again: the set sends it to another node when it can.
func ConnError(err error) bool { return connLevel(context.Background(), err) }

// connLevel reports whether err is a failure to reach or talk to the
// server, as opposed to an error the server returned or the caller's own
// cancellation. Such a read is safe to retry elsewhere: replicas cannot
// write, and nothing was returned to the caller yet.
func connLevel(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server is shutting down or in crash recovery: a node problem.
		return pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return !errors.Is(err, pgx.ErrNoRows)
}

// nodeDown reports whether err shows the server refusing connections,
// shutting down, or dropping an established connection, as opposed to
// being slow.
func nodeDown(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed)
}

// cleanError returns err's text. pgx never puts the password in its
// errors; this is the one place to change if that ever differs.
func cleanError(err error) string {
	return err.Error()
}
