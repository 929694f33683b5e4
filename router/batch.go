package router

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/replica"
)

// lsnSQL reads the WAL insert position after a commit.
const lsnSQL = "SELECT pg_current_wal_insert_lsn()::text"

// SendBatch sends a batch of statements to the shard's primary in one
// round trip, as pgx.Conn.SendBatch does: they run in one implicit
// transaction unless the batch holds its own BEGIN and COMMIT. Close the
// results to release the connection; under a session, Close records the
// position after the batch's commit. A batch begun with Batch.BeginTx
// leaves its transaction open: the results' Tx, once Close has returned,
// is a transaction like BeginTx's, and its Commit or Rollback releases
// the connection.
func (t Target) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.usable(ctx); err != nil {
		return errBatch{err}
	}
	if err := t.leaseErr(ctx); err != nil {
		return errBatch{t.fail(ctx, err)}
	}
	began := time.Now()
	conn, err := t.s.set.WriteConn(ctx)
	if err != nil {
		t.s.set.TraceWrite(ctx, "batch", nil, began, 0, err)
		return errBatch{t.fail(ctx, err)}
	}
	br := &batchResults{BatchResults: conn.SendBatch(ctx, b), t: t, ctx: ctx, conn: conn, began: began}
	if inner := br.BatchResults.Tx(); inner != nil {
		// The transaction's Commit or Rollback reports it.
		br.tx = &routerTx{Tx: inner, t: t, keys: new([]string), own: &owned{conn: conn, write: true, began: began}}
	}
	return br
}

// batchResults releases the connection, and records the session's
// position, when closed.
type batchResults struct {
	pgx.BatchResults
	t      Target
	ctx    context.Context
	conn   *replica.Conn
	tx     *routerTx // the batch's own transaction (Batch.BeginTx), which keeps the connection
	began  time.Time
	closed bool
	err    error
}

// Tx returns the transaction the batch began, or nil; see SendBatch.
func (b *batchResults) Tx() pgx.Tx {
	if b.tx == nil {
		return nil
	}
	return b.tx
}

func (b *batchResults) Close() error {
	if b.closed {
		return b.err
	}
	b.closed = true
	err := b.BatchResults.Close()
	if b.tx != nil {
		if err != nil {
			_ = b.tx.Rollback(b.ctx)
			b.err = b.t.fail(b.ctx, err)
		}
		return b.err
	}
	defer b.conn.Release()
	if err != nil {
		err = b.conn.Failed(b.ctx, err)
		b.t.s.set.TraceWrite(b.ctx, "batch", b.conn, b.began, 0, err)
		b.err = b.t.fail(b.ctx, err)
		return b.err
	}
	b.conn.Wrote()
	b.err = b.t.wrote(b.ctx, b.conn, "batch", b.began)
	return b.err
}

// CopyFrom copies rows into a table on the shard's primary with COPY, as
// pgx.Conn.CopyFrom does, and returns how many it copied. Under a
// session, it records the position after the copy's commit.
func (t Target) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	if err := t.usable(ctx); err != nil {
		return 0, err
	}
	if err := t.leaseErr(ctx); err != nil {
		return 0, t.fail(ctx, err)
	}
	began := time.Now()
	conn, err := t.s.set.WriteConn(ctx)
	if err != nil {
		t.s.set.TraceWrite(ctx, "copy", nil, began, 0, err)
		return 0, t.fail(ctx, err)
	}
	defer conn.Release()
	n, err := conn.CopyFrom(ctx, table, columns, rows)
	if err != nil {
		err = conn.Failed(ctx, err)
		t.s.set.TraceWrite(ctx, "copy", conn, began, 0, err)
		return n, t.fail(ctx, err)
	}
	conn.Wrote()
	return n, t.wrote(ctx, conn, "copy", began)
}

// wrote reports a write (op) that has committed on conn to the Tracer and
// records, under a session, the position after it.
func (t Target) wrote(ctx context.Context, conn *replica.Conn, op string, began time.Time) error {
	sess := SessionFrom(ctx)
	if sess == nil {
		t.s.set.TraceWrite(ctx, op, conn, began, 0, nil)
		return nil
	}
	lsn, err := commitPosition(ctx, conn)
	t.s.set.TraceWrite(ctx, op, conn, began, lsn, err)
	if err != nil {
		return t.fail(ctx, err)
	}
	sess.observe(t.s.name, lsn)
	return nil
}

// commitPosition reads, on conn, the position after a write that has
// committed there; its error wraps replica.ErrCommitLSN.
func commitPosition(ctx context.Context, conn *replica.Conn) (replica.LSN, error) {
	var text string
	if err := conn.QueryRow(ctx, lsnSQL).Scan(&text); err != nil {
		return 0, fmt.Errorf("%w: %w", replica.ErrCommitLSN, err)
	}
	lsn, err := replica.ParseLSN(text)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", replica.ErrCommitLSN, err)
	}
	return lsn, nil
}

// Ping checks that every shard's primary answers, at once, and names each
// shard whose primary does not in a *MultiError.
func (r *Router) Ping(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	failed := r.onEveryShard(ctx, len(r.current().shards), func(_ int, t Target) error {
		conn, err := t.s.set.WriteConn(ctx)
		if err != nil {
			return t.fail(ctx, err)
		}
		defer conn.Release()
		if err := conn.Ping(ctx); err != nil {
			return t.fail(ctx, conn.Failed(ctx, err))
		}
		return nil
	})
	if len(failed) > 0 {
		return &MultiError{Errs: failed}
	}
	return nil
}

// errBatch is the pgx.BatchResults of a batch that could not be sent.
type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow{b.err} }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }
