package replica

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Conn is a connection the set lends for what it has no method for: a
// transaction held open by the caller, a batch, COPY. WriteConn lends one
// on the primary, ReadConn one on the node a read may use. It is not safe
// for concurrent use; Release returns it, once.
type Conn struct {
	*pgxpool.Conn
	set    *Set
	t      target
	write  bool
	served Served
}

// WriteConn acquires a connection on the primary, failing fast with
// ErrNoPrimary when there is none, as a write does.
func (s *Set) WriteConn(ctx context.Context) (*Conn, error) {
	t, err := s.writeConn(ctx)
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: t.conn, set: s, t: t, write: true, served: Served{Node: t.n.addr, Role: RolePrimary}}, nil
}

// ReadConn acquires a connection on the node that o lets serve a read: an
// eligible replica at or past o.MinLSN, else as Options.Fallback says. The
// node counts it as one read.
func (s *Set) ReadConn(ctx context.Context, o ReadOptions) (*Conn, error) {
	t, err := s.route(ctx, o, nil, new(attempts))
	if err != nil {
		return nil, err
	}
	if t.fallback != "" {
		t.n.fallbacks.Add(1)
	}
	t.n.reads.Add(1)
	return &Conn{Conn: t.conn, set: s, t: t, served: Served{Node: t.n.addr, Role: t.n.status().role}}, nil
}

// Served says which node the connection is on.
func (c *Conn) Served() Served { return c.served }

// Wrote counts a write done on the connection in the node's figures.
func (c *Conn) Wrote() { c.t.n.writes.Add(1) }

// Failed returns err, met on the connection, as the set reports errors:
// named with the set; on the primary, a connection lost after something
// was sent as ErrOutcomeUnknown (the caller's COMMIT may have run), one
// refused as ErrNoPrimary. A replica that dropped the connection leaves
// rotation until a check admits it again.
func (c *Conn) Failed(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if c.write {
		err, _ := c.set.writeFailed(ctx, c.t.n, err, true)
		return err
	}
	if cls := classify(ctx, err); cls.retryable() {
		c.set.nodeFailed(c.t.n, cls, err)
	}
	return setError(c.set.name, err)
}

// Release returns the connection to its pool; later calls do nothing.
func (c *Conn) Release() {
	if c.t.conn != nil {
		c.t.release()
		c.t.conn = nil
	}
}
