package topology

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
)

// ShardFence is a shard's fence as its primary records it.
type ShardFence struct {
	FenceState
	// Found says the primary has a fence; false if it was never fenced.
	Found bool `json:"found"`
	// Guarded says the shard fences the tables created while a fence
	// holds (see GuardNewTables).
	Guarded bool `json:"guarded"`
	// Relaxed says, in Relax's answer, that this call removed the fence's
	// triggers.
	Relaxed bool `json:"relaxed,omitempty"`
	// Err says why the primary could not be read (or relaxed); "" if it
	// was.
	Err string `json:"error,omitempty"`
}

// Fences reads the fence of every shard of the newest map on its primary.
// A primary that cannot be read is reported in its ShardFence, not as an
// error. lookup expands the DSNs' variables (nil: os.LookupEnv).
func (s *Store) Fences(ctx context.Context, lookup func(string) (string, bool)) ([]ShardFence, error) {
	return s.eachFence(ctx, lookup, func(ctx context.Context, conn *pgx.Conn, sf *ShardFence) error {
		st, ok, err := ReadFence(ctx, conn)
		sf.FenceState, sf.Found = st, ok
		return err
	})
}

// Relax calls RelaxFence on the primary of every shard of the newest map
// and reports each shard's fence afterwards. Routers that follow the store
// do this themselves; Relax is for a fence whose routers' role may not
// remove it (it does not own the tables). o.LockTimeout bounds each
// shard's wait; o.Lookup expands the DSNs' variables.
func (s *Store) Relax(ctx context.Context, o ApplyOptions) ([]ShardFence, error) {
	return s.eachFence(ctx, o.Lookup, func(ctx context.Context, conn *pgx.Conn, sf *ShardFence) error {
		done, err := RelaxFence(ctx, conn, o.LockTimeout)
		if err != nil {
			return err
		}
		st, ok, err := ReadFence(ctx, conn)
		sf.FenceState, sf.Found, sf.Relaxed = st, ok, done
		return err
	})
}

func (s *Store) eachFence(ctx context.Context, lookup func(string) (string, bool), fn func(context.Context, *pgx.Conn, *ShardFence) error) ([]ShardFence, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	m, err := s.Current(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ShardFence, len(m.Shards))
	for i, sh := range m.Shards {
		sf := &out[i]
		sf.Shard = sh.Name
		dsn, err := ExpandDSN(sh.Primary, lookup)
		if err == nil {
			err = withConn(ctx, dsn, func(c *pgx.Conn) error {
				if err := fn(ctx, c, sf); err != nil {
					return err
				}
				return c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_event_trigger
					WHERE evtname = 'pgshard_fence_new_tables' AND evtenabled <> 'D')`).Scan(&sf.Guarded)
			})
		}
		if err != nil {
			sf.Shard = sh.Name
			sf.Err = fmt.Sprintf("shard %s: %v", sh.Name, err)
		}
	}
	return out, nil
}
