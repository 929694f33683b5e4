package replica

import (
	"context"
	"errors"
	"fmt"

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
	if st := p.status(); !st.reachable {
		return nil, setError(s.name, fmt.Errorf("%w: %s is unreachable: %s", ErrNoPrimary, p.addr, st.err))
	}
	return p, nil
}

// writeConn acquires a connection on the primary, failing fast with
// ErrNoPrimary when it cannot be reached.
func (s *Set) writeConn(ctx context.Context) (target, error) {
	p, err := s.writer()
	if err != nil {
		return target{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	defer cancel()
	t, err := s.acquire(ctx, p, false)
	if err != nil {
		return target{}, setError(s.name, fmt.Errorf("%w: %s: %w", ErrNoPrimary, p.addr, errors.Unwrap(err)))
	}
	return t, nil
}

// writeFailed turns a connection-level failure of a write into
// ErrNoPrimary. When the primary is down (not merely slow), it is marked
// unreachable until its next good check, so that the writes behind this
// one fail fast. Whether a write that was sent before its connection broke
// committed is unknown; ErrNoPrimary says only that the primary is not
// answering.
func (s *Set) writeFailed(ctx context.Context, n *node, err error) error {
	if !connLevel(ctx, err) {
		return setError(s.name, err)
	}
	s.nodeFailed(n, err)
	return setError(s.name, fmt.Errorf("%w: %s: %w", ErrNoPrimary, n.addr, err))
}

// Exec runs a statement on the primary. It is retried once only when
// nothing reached the server (pgconn.SafeToRetry).
func (s *Set) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	for try := 0; ; try++ {
		t, err := s.writeConn(ctx)
		if err != nil {
			return pgconn.CommandTag{}, err
		}
		tag, err := t.conn.Exec(ctx, sql, args...)
		t.release()
		if err != nil && try == 0 && pgconn.SafeToRetry(err) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return tag, s.writeFailed(ctx, t.n, err)
		}
		t.n.writes.Add(1)
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
	t, err := s.writeConn(ctx)
	if err != nil {
		return pgconn.CommandTag{}, 0, err
	}
	defer t.release()
	if len(args) == 0 {
		return s.execThenLSN(ctx, t, sql)
	}
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
	switch {
	case err == nil:
		t.n.writes.Add(1)
		return tag, lsn, nil
	case errors.Is(err, ErrCommitLSN):
		t.n.writes.Add(1)
		return tag, 0, setError(s.name, err)
	}
	return tag, 0, s.writeFailed(ctx, t.n, err)
}

// execThenLSN is ExecLSN for SQL without arguments.
func (s *Set) execThenLSN(ctx context.Context, t target, sql string) (pgconn.CommandTag, LSN, error) {
	tag, err := t.conn.Exec(ctx, sql)
	if err != nil {
		return tag, 0, s.writeFailed(ctx, t.n, err)
	}
	t.n.writes.Add(1)
	if tx := t.conn.Conn().PgConn().TxStatus(); tx != 'I' {
		// The SQL left a transaction open (a BEGIN without COMMIT): there is
		// no commit to point at, and the pool must not get it back so.
		_, _ = t.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return tag, 0, setError(s.name, errors.New("the statement left a transaction open; it was rolled back"))
	}
	var text string
	if err := t.conn.QueryRow(ctx, lsnSQL).Scan(&text); err != nil {
		return tag, 0, setError(s.name, fmt.Errorf("%w: %w", ErrCommitLSN, err))
	}
	lsn, err := ParseLSN(text)
	if err != nil {
		return tag, 0, setError(s.name, fmt.Errorf("%w: %w", ErrCommitLSN, err))
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
// fn may have had effects the library cannot see.
func (s *Set) Tx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) (LSN, error) {
	t, err := s.writeConn(ctx)
	if err != nil {
		return 0, err
	}
	defer t.release()
	tx, err := t.conn.BeginTx(ctx, opts)
	if err != nil {
		return 0, s.writeFailed(ctx, t.n, err)
	}
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
	if err != nil {
		if len(results) == 2 {
			return 0, setError(s.name, fmt.Errorf("%w: %w", ErrCommitLSN, err))
		}
		return 0, s.writeFailed(ctx, t.n, err)
	}
	if len(results) != 2 {
		return 0, setError(s.name, fmt.Errorf("commit returned %d results, want 2", len(results)))
	}
	if results[0].CommandTag.String() != "COMMIT" {
		// The transaction had failed inside fn without fn noticing;
		// PostgreSQL answers COMMIT with ROLLBACK.
		return 0, setError(s.name, pgx.ErrTxCommitRollback)
	}
	if len(results[1].Rows) != 1 || len(results[1].Rows[0]) != 1 {
		return 0, setError(s.name, ErrCommitLSN)
	}
	t.n.writes.Add(1)
	lsn, err := ParseLSN(string(results[1].Rows[0][0]))
	if err != nil {
		return 0, setError(s.name, fmt.Errorf("%w: %w", ErrCommitLSN, err))
	}
	return lsn, nil
}
