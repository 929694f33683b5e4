package replica

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Rows is the result of a read. It implements pgx.Rows. A read that fails
// at the connection level, or whose node stops answering, before it yields
// a row is sent once more to another node (MaxAttempts in all). Like
// pgx.Rows it is not safe for concurrent use; Close releases the
// connection.
type Rows struct {
	set   *Set
	ctx   context.Context
	opts  ReadOptions
	sql   string
	args  []any
	tries int

	t        target
	wait     waiter    // on a replica: the sweeper may give up on the attempt
	watched  bool      // wait is in use
	attempts attempts  // acquiring's, reused
	began    time.Time // of the current attempt, when tracing
	inner    pgx.Rows
	batch    pgx.BatchResults
	yielded  bool
	closed   bool
	err      error
	errNamed bool // err already names the shard
	served   Served
}

// start routes the read and sends it, avoiding the node that just failed.
// It is the read's one attempt loop, with Next's retry the only other way
// in.
func (r *Rows) start(avoid *node) error {
	for {
		if r.set.tracing {
			r.began = time.Now()
		}
		t, err := r.set.route(r.ctx, r.opts, avoid, &r.attempts)
		if err != nil {
			r.traceAttempt(target{}, err)
			return err
		}
		r.tries++
		r.t, r.served = t, Served{Node: t.n.addr, Role: t.n.status().role}
		r.watched = r.served.Role == RoleReplica
		if r.watched {
			// A replica that stops answering is given up on for another
			// node; the primary has no other node to turn to.
			r.set.wait(t.n, &r.wait, t.conn.Conn().PgConn().Conn(), nil)
		}
		if r.opts.Observe {
			b := &pgx.Batch{}
			b.Queue(r.sql, r.args...)
			b.Queue(observeSQL)
			r.batch = t.conn.SendBatch(r.ctx, b)
			r.inner, err = r.batch.Query()
		} else {
			r.inner, err = t.conn.Query(r.ctx, r.sql, r.args...)
		}
		if err == nil {
			if t.fallback != "" {
				t.n.fallbacks.Add(1)
			}
			t.n.reads.Add(1)
			return nil
		}
		err = r.attemptError(err)
		cls := classify(r.ctx, err)
		r.finish()
		r.traceAttempt(t, err)
		if r.tries >= MaxAttempts || !cls.retryable() {
			return setError(r.set.name, err)
		}
		r.set.nodeFailed(t.n, cls, err)
		avoid = t.n
	}
}

// attemptError names the sweeper's giving up for what it was.
func (r *Rows) attemptError(err error) error {
	if err != nil && r.ctx.Err() == nil && r.watched && r.wait.fired.Load() {
		return fmt.Errorf("node %s: %w (%s): %w", r.t.n.addr, errNoAnswer, r.set.attempt, err)
	}
	return err
}

// traceAttempt reports one attempt to the tracer.
func (r *Rows) traceAttempt(t target, err error) {
	if !r.set.tracing {
		return
	}
	e := ReadEvent{Shard: r.set.name, Attempt: max(r.tries, 1), MinLSN: r.opts.MinLSN, Err: err, Duration: time.Since(r.began)}
	if t.n != nil {
		e.Node, e.Role, e.Fallback, e.Lag = t.n.addr, r.served.Role, t.fallback, t.lag
	}
	r.set.trace.TraceRead(r.ctx, e)
}

// finish closes what the current attempt holds.
func (r *Rows) finish() {
	if r.inner != nil {
		r.inner.Close()
		if err := r.inner.Err(); err != nil && r.err == nil {
			r.err = r.attemptError(err)
		}
	}
	if r.batch != nil {
		if r.err == nil {
			var text *string
			if err := r.batch.QueryRow().Scan(&text); err == nil && text != nil {
				r.served.LSN, _ = ParseLSN(*text)
			}
		}
		r.batch.Close()
		r.batch = nil
	}
	if r.watched {
		r.t.n.done(&r.wait)
	}
	if r.t.conn != nil {
		r.t.release()
		r.t.conn = nil
	}
	r.inner = nil
}

// Next advances to the next row; see pgx.Rows.
func (r *Rows) Next() bool {
	if r.closed || r.inner == nil {
		return false
	}
	if r.inner.Next() {
		r.yielded = true
		return true
	}
	err := r.attemptError(r.inner.Err())
	if cls := classify(r.ctx, err); err != nil && !r.yielded && r.tries < MaxAttempts && cls.retryable() {
		failed := r.t
		r.inner.Close()
		r.inner = nil
		r.finish()
		r.traceAttempt(failed, err)
		r.t = target{}
		r.set.nodeFailed(failed.n, cls, err)
		if serr := r.start(failed.n); serr != nil {
			r.err, r.errNamed = serr, true
			r.Close()
			return false
		}
		return r.Next()
	}
	r.Close()
	return false
}

// Close releases the connection; it is safe to call more than once.
func (r *Rows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	if r.inner != nil {
		t := r.t
		r.finish()
		r.traceAttempt(t, r.err)
		r.t = target{}
	}
	if r.opts.Done != nil {
		r.opts.Done(r.served)
	}
}

// Err returns the error that ended the rows, if any.
func (r *Rows) Err() error {
	if r.err != nil && r.errNamed {
		return r.err
	}
	if r.err != nil {
		return setError(r.set.name, r.err)
	}
	return nil
}

// Served says which node answered; with Observe, its LSN is set after Close.
func (r *Rows) Served() Served { return r.served }

// CommandTag returns the command tag once the rows are closed.
func (r *Rows) CommandTag() pgconn.CommandTag {
	if r.inner == nil {
		return pgconn.CommandTag{}
	}
	return r.inner.CommandTag()
}

// FieldDescriptions describes the result's columns.
func (r *Rows) FieldDescriptions() []pgconn.FieldDescription {
	if r.inner == nil {
		return nil
	}
	return r.inner.FieldDescriptions()
}

// Scan reads the current row into dest; see pgx.Rows.
func (r *Rows) Scan(dest ...any) error { return r.inner.Scan(dest...) }

// Values returns the current row's decoded values.
func (r *Rows) Values() ([]any, error) { return r.inner.Values() }

// RawValues returns the current row's raw bytes.
func (r *Rows) RawValues() [][]byte { return r.inner.RawValues() }

// Conn returns the connection the rows are read from while they are open.
func (r *Rows) Conn() *pgx.Conn {
	if r.t.conn == nil {
		return nil
	}
	return r.t.conn.Conn()
}

// Row is the result of ReadRow; it implements pgx.Row.
type Row struct {
	rows *Rows
	err  error
}

// Scan reads the row into dest, or returns pgx.ErrNoRows.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	rows := r.rows
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	err := rows.Err()
	if classify(rows.ctx, err).retryable() {
		// The row arrived whole; only the end of the result was lost with
		// the connection (a node that crashed just then). QueryRow wants
		// nothing more, so the read stands.
		return nil
	}
	return err
}

// Served says which node answered, after Scan.
func (r *Row) Served() Served {
	if r.rows == nil {
		return Served{}
	}
	return r.rows.Served()
}

// TypeMap returns the map the values are decoded with.
func (r *Rows) TypeMap() *pgtype.Map {
	if r.inner == nil {
		return pgtype.NewMap()
	}
	return r.inner.TypeMap()
}
