package reshard

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// mark writes a marker for the workflow into the source's WAL and returns
// its position: once every target has recorded a position at or past it,
// the targets have every change the source committed before.
func (m *Manager) mark(ctx context.Context, st *State) (pglogrepl.LSN, error) {
	var lsn string
	err := m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT pg_logical_emit_message(true, $1, $2)::text`, markerPrefix, st.Name).Scan(&lsn)
	})
	if err != nil {
		return 0, err
	}
	return pglogrepl.ParseLSN(lsn)
}

// waitApplied waits until every target has recorded a position at or past
// lsn (the stream, run by Run, gets them there), at most timeout.
func (m *Manager) waitApplied(ctx context.Context, st *State, lsn pglogrepl.LSN, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conns := make([]*pgx.Conn, len(st.Targets))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	for i, t := range st.Targets {
		c, err := m.target(ctx, t)
		if err != nil {
			return err
		}
		conns[i] = c
	}
	for i := 0; i < len(conns); {
		var at string
		err := conns[i].QueryRow(ctx, `SELECT lsn::text FROM pgshard.reshard_apply WHERE workflow = $1`, st.Name).Scan(&at)
		if ctx.Err() != nil {
			return fmt.Errorf("target %s did not reach %s in %v", st.Targets[i].Name, lsn, timeout)
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("target %s did not reach %s in %v", st.Targets[i].Name, lsn, timeout)
			}
			return fmt.Errorf("target %s: %w", st.Targets[i].Name, err)
		}
		if got, err := pglogrepl.ParseLSN(at); err == nil && got >= lsn {
			i++
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("target %s is at %s, did not reach %s in %v (is 'pgshard reshard run' running?)", st.Targets[i].Name, at, lsn, timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// CatchUp waits, at most timeout, until the targets have applied every
// change the source committed before the call. The workflow must be
// streaming, and Run running somewhere.
func (m *Manager) CatchUp(ctx context.Context, name string, timeout time.Duration) error {
	st, _, err := m.load(ctx, name)
	if err != nil {
		return err
	}
	if !streaming(st.Phase) {
		return fmt.Errorf("%w: catch up in phase %s", ErrPhase, st.Phase)
	}
	lsn, err := m.mark(ctx, st)
	if err != nil {
		return err
	}
	return m.waitApplied(ctx, st, lsn, timeout)
}

// waitPosition waits, at most timeout, until the node's row key of
// pgshard.reshard_apply is at or past lsn.
func (m *Manager) waitPosition(ctx context.Context, what, dsn, key string, lsn pglogrepl.LSN, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return m.withConn(ctx, what, dsn, func(c *pgx.Conn) error {
		for {
			var at string
			err := c.QueryRow(ctx, `SELECT lsn::text FROM pgshard.reshard_apply WHERE workflow = $1`, key).Scan(&at)
			if ctx.Err() != nil {
				return fmt.Errorf("%s did not reach %s in %v (is 'pgshard reshard run' running?)", what, lsn, timeout)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if got, err := pglogrepl.ParseLSN(at); err == nil && got >= lsn {
				return nil
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
}
