package replica

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrCommitLSN is wrapped when a write committed but its WAL position could
// not be read back. The write is durable as far as the server is concerned;
// only read-your-writes for it is lost, so callers should read the primary.
var ErrCommitLSN = errors.New("replica: write committed, but its WAL position is unknown")

// commitLSNSQL ends the transaction and, in the same message, reads the WAL
// insert position, which is past the commit record once COMMIT is done.
// The simple protocol runs both statements in order; an error in COMMIT
// stops the SELECT.
const commitLSNSQL = `COMMIT; SELECT pg_current_wal_insert_lsn()::text`

// lsnSQL reads the WAL insert position after an autocommit statement.
const lsnSQL = `SELECT pg_current_wal_insert_lsn()::text`

// writer returns the node that takes writes now, or why there is none.
func (s *Set) writer() (*node, error) {
	if s.closed.Load() {
		return nil, setError(s.name, ErrClosed)
	}
	if s.split.Load() {
		return nil, setError(s.name, ErrSplitBrain)
	}
	p := s.primary.Load()
	if p == nil {
		return nil, setError(s.name, ErrNoPrimary)
	}
	if st := p.status(); st.down {
		return nil, setError(s.name, fmt.Errorf("%w: %s is down: %s", ErrNoPrimary, p.addr, st.err))
	}
	return p, nil
}

// maxWriteSends is how many connections a write tries when each failed
// before anything reached the server (a pooled connection that had died
// while idle): the pool replaces dead connections, so the last try is on
// a fresh one.
const maxWriteSends = 3

// writeConn acquires a connection on the primary, failing fast with
// ErrNoPrimary when there is none or it cannot be reached.
func (s *Set) writeConn(ctx context.Context) (target, error) {
	p, err := s.writer()
	if err != nil {
		return target{}, err
	}
	actx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		t, err := s.acquire(actx, p, "")
		if err == nil {
			return t, nil
		}
		if ctx.Err() != nil {
			return target{}, setError(s.name, fmt.Errorf("node %s: %w", p.addr, ctx.Err()))
		}
		if classify(context.Background(), err) != errBusy {
			return target{}, setError(s.name, fmt.Errorf("%w: %s: %w", ErrNoPrimary, p.addr, errors.Unwrap(err)))
		}
		// The primary is up but refused a new session (its connection
		// slots are taken, say): a pooled connection released meanwhile
		// takes the write. Until ConnectTimeout, then the refusal, which
		// is not "no primary".
		select {
		case <-time.After(wait):
		case <-actx.Done():
			return target{}, setError(s.name, fmt.Errorf("node %s is up but refused a session: %w", p.addr, errors.Unwrap(err)))
		}
	}
}

// resend reports whether a write that failed with err may be sent again:
// nothing reached the server, or the server answered that it terminated
// the session (a pooled connection whose backend was terminated while
// idle, or during the statement, which it then rolled back).
func resend(ctx context.Context, err error, sends int) bool {
	if err == nil || sends >= maxWriteSends || ctx.Err() != nil {
		return false
	}
	var pgErr *pgconn.PgError
	return pgconn.SafeToRetry(err) || errors.As(err, &pgErr) && (pgErr.Code == "57P01" || pgErr.Code == "57P02")
}

// writeFailed says what a write's error means for its outcome. An error
// from the server, or one that struck before anything was sent, means
// nothing was committed. A connection lost, or a context
// ended, after the commit (or an autocommit statement) may have reached
// the server leaves the outcome unknown: ErrOutcomeUnknown.
func (s *Set) writeFailed(ctx context.Context, n *node, err error, mayHaveCommitted bool) (error, WriteOutcome) {
	cls := classify(ctx, err)
	if cls.retryable() {
		s.nodeFailed(n, cls, err)
	}
	var pgErr *pgconn.PgError
	switch {
	case cls == errStatement:
		return setError(s.name, err), WriteFailed
	case errors.As(err, &pgErr) && cls == errLost:
		// The server ended the session (a terminated backend, each time
		// the write was sent): it aborted the transaction on its way out.
		return setError(s.name, fmt.Errorf("node %s: the server ended the session; nothing was committed: %w", n.addr, err)), WriteFailed
	case errors.As(err, &pgErr):
		// The server refused the write as a whole: shutting down,
		// starting up, out of connections.
		return setError(s.name, fmt.Errorf("%w: %s: %w", ErrNoPrimary, n.addr, err)), WriteFailed
	case mayHaveCommitted && !pgconn.SafeToRetry(err):
		return setError(s.name, fmt.Errorf("%w: node %s: %w", ErrOutcomeUnknown, n.addr, err)), WriteUnknown
	case cls == errCanceled:
		return setError(s.name, fmt.Errorf("node %s: %w", n.addr, err)), WriteFailed
	}
	return setError(s.name, fmt.Errorf("%w: %s: %w", ErrNoPrimary, n.addr, err)), WriteFailed
}

// traceWrite reports a write's outcome to the tracer.
func (s *Set) traceWrite(ctx context.Context, op string, n *node, began time.Time, sends int, lsn LSN, out WriteOutcome, err error) {
	if !s.tracing {
		return
	}
	e := WriteEvent{Shard: s.name, Op: op, Outcome: out, Attempts: sends, LSN: lsn, Duration: time.Since(began), Err: err}
	if n != nil {
		e.Node = n.addr
	}
	s.trace.TraceWrite(ctx, e)
}

// Exec runs a statement on the primary, outside any transaction of the
// set's. It is sent again only when nothing reached the server
// (pgconn.SafeToRetry), on another connection, up to three sends.
func (s *Set) Exec(ctx context.Context, sql string, args ...any) (tag pgconn.CommandTag, err error) {
	began := time.Now()
	for sends := 1; ; sends++ {
		t, err := s.writeConn(ctx)
		if err != nil {
			s.traceWrite(ctx, "exec", nil, began, sends, 0, WriteFailed, err)
			return pgconn.CommandTag{}, err
		}
		tag, err = t.conn.Exec(ctx, sql, args...)
		t.release()
		if resend(ctx, err, sends) {
			continue
		}
		if err != nil {
			err, out := s.writeFailed(ctx, t.n, err, true)
			s.traceWrite(ctx, "exec", t.n, began, sends, 0, out, err)
			return tag, err
		}
		t.n.writes.Add(1)
		s.traceWrite(ctx, "exec", t.n, began, sends, 0, WriteCommitted, nil)
		return tag, nil
	}
}

// ExecLSN runs a statement on the primary and returns the WAL position
// after its commit, for read-your-writes. It accepts what Exec accepts.
// With arguments (one statement), BEGIN, the statement, COMMIT and the
// position query go in one pipelined round trip, so the position is read
// after the commit, never before, and the statement uses pgx's statement
// cache like Exec. Without arguments, the SQL runs as Exec runs it (simple
// protocol: several statements, or one that cannot run in a transaction
// block, such as VACUUM), and the position is read on the same connection
// in a second round trip.
func (s *Set) ExecLSN(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, LSN, error) {
	began := time.Now()
	for sends := 1; ; sends++ {
		t, err := s.writeConn(ctx)
		if err != nil {
			s.traceWrite(ctx, "exec-lsn", nil, began, sends, 0, WriteFailed, err)
			return pgconn.CommandTag{}, 0, err
		}
		var (
			tag pgconn.CommandTag
			lsn LSN
		)
		if len(args) == 0 {
			tag, lsn, err = execThenLSN(ctx, t, sql)
		} else {
			tag, lsn, err = batchLSN(ctx, t, sql, args)
		}
		t.release()
		if errors.Is(err, errTxLeftOpen) {
			s.traceWrite(ctx, "exec-lsn", t.n, began, sends, 0, WriteFailed, err)
			return tag, 0, setError(s.name, err)
		}
		if !errors.Is(err, ErrCommitLSN) && resend(ctx, err, sends) {
			continue
		}
		switch {
		case err == nil:
			t.n.writes.Add(1)
			s.traceWrite(ctx, "exec-lsn", t.n, began, sends, lsn, WriteCommitted, nil)
			return tag, lsn, nil
		case errors.Is(err, ErrCommitLSN):
			t.n.writes.Add(1)
			s.traceWrite(ctx, "exec-lsn", t.n, began, sends, 0, WriteCommitted, err)
			return tag, 0, setError(s.name, err)
		}
		err, out := s.writeFailed(ctx, t.n, err, true)
		s.traceWrite(ctx, "exec-lsn", t.n, began, sends, 0, out, err)
		return tag, 0, err
	}
}

// batchLSN runs one statement with arguments between BEGIN and COMMIT and
// reads the position after the commit, in one pipelined round trip.
func batchLSN(ctx context.Context, t target, sql string, args []any) (pgconn.CommandTag, LSN, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sql, args...)
	b.Queue("COMMIT")
	b.Queue(lsnSQL)
	br := t.conn.SendBatch(ctx, b)
	tag, lsn, err := readExecLSN(br)
	cerr := br.Close()
	if err == nil {
		err = cerr
	}
	if tx := t.conn.Conn().PgConn().TxStatus(); tx != 'I' && !t.conn.Conn().IsClosed() {
		// The statement failed inside the transaction: end it here rather
		// than hand the pool a connection in a failed transaction.
		_, _ = t.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	return tag, lsn, err
}

// errTxLeftOpen is returned by ExecLSN for SQL that began a transaction
// without ending it.
var errTxLeftOpen = errors.New("the statement left a transaction open; it was rolled back")

// execThenLSN is ExecLSN for SQL without arguments: Exec's simple protocol,
// then the position on the same connection.
func execThenLSN(ctx context.Context, t target, sql string) (pgconn.CommandTag, LSN, error) {
	tag, err := t.conn.Exec(ctx, sql)
	if err != nil {
		return tag, 0, err
	}
	if tx := t.conn.Conn().PgConn().TxStatus(); tx != 'I' {
		// The SQL left a transaction open (a BEGIN without COMMIT): there is
		// no commit to point at, and the pool must not get it back so.
		_, _ = t.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return tag, 0, errTxLeftOpen
	}
	var text string
	if err := t.conn.QueryRow(ctx, lsnSQL).Scan(&text); err != nil {
		return tag, 0, fmt.Errorf("%w: %w", ErrCommitLSN, err)
	}
	lsn, err := ParseLSN(text)
	if err != nil {
		return tag, 0, fmt.Errorf("%w: %w", ErrCommitLSN, err)
	}
	return tag, lsn, nil
}

// readExecLSN reads the results of ExecLSN's batch.
func readExecLSN(br pgx.BatchResults) (pgconn.CommandTag, LSN, error) {
	if _, err := br.Exec(); err != nil {
		return pgconn.CommandTag{}, 0, err
	}
	tag, err := br.Exec()
	if err != nil {
		return tag, 0, err
	}
	commit, err := br.Exec()
	if err != nil {
		return tag, 0, err
	}
	if commit.String() != "COMMIT" {
		return tag, 0, pgx.ErrTxCommitRollback
	}
	var text string
	if err := br.QueryRow().Scan(&text); err != nil {
		return tag, 0, fmt.Errorf("%w: %w", ErrCommitLSN, err)
	}
	lsn, err := ParseLSN(text)
	if err != nil {
		return tag, 0, fmt.Errorf("%w: %w", ErrCommitLSN, err)
	}
	return tag, lsn, nil
}

// Tx runs fn in a transaction on the primary: it commits when fn returns
// nil and rolls back otherwise. It returns the WAL position after the
// commit, read in the same round trip as the COMMIT. A Tx is never retried:
// fn may have had effects the library cannot see. When the COMMIT was sent
// but its answer lost, the error wraps ErrOutcomeUnknown.
func (s *Set) Tx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) (lsn LSN, err error) {
	began := time.Now()
	var n *node
	out := WriteFailed
	defer func() { s.traceWrite(ctx, "tx", n, began, 1, lsn, out, err) }()
	var (
		t  target
		tx pgx.Tx
	)
	for sends := 1; ; sends++ {
		if t, err = s.writeConn(ctx); err != nil {
			return 0, err
		}
		n = t.n
		if tx, err = t.conn.BeginTx(ctx, opts); err == nil {
			break
		}
		t.release()
		// A pooled session the server ended while it sat idle fails at
		// BEGIN, before fn ran: begin again on another connection.
		if resend(ctx, err, sends) {
			continue
		}
		err, out = s.writeFailed(ctx, t.n, err, false)
		return 0, err
	}
	defer t.release()
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return 0, err
	}
	results, err := t.conn.Conn().PgConn().Exec(ctx, commitLSNSQL).ReadAll()
	if len(results) == 0 || results[0].Err != nil {
		// COMMIT failed, or its answer was lost.
		if len(results) > 0 {
			err = results[0].Err
		}
		err, out = s.writeFailed(ctx, t.n, err, true)
		return 0, err
	}
	if results[0].CommandTag.String() != "COMMIT" {
		// The transaction had failed inside fn without fn noticing;
		// PostgreSQL answers COMMIT with ROLLBACK.
		return 0, setError(s.name, pgx.ErrTxCommitRollback)
	}
	out = WriteCommitted
	t.n.writes.Add(1)
	if err == nil && (len(results) != 2 || results[1].Err != nil || len(results[1].Rows) != 1 || len(results[1].Rows[0]) != 1) {
		err = fmt.Errorf("commit returned %d results, want 2", len(results))
	}
	if err != nil {
		return 0, setError(s.name, fmt.Errorf("%w: %w", ErrCommitLSN, err))
	}
	lsn, err = ParseLSN(string(results[1].Rows[0][0]))
	if err != nil {
		return 0, setError(s.name, fmt.Errorf("%w: %w", ErrCommitLSN, err))
	}
	return lsn, nil
}
