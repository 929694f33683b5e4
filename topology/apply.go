package topology

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/shard"
)

// ApplyOptions tune Apply. The zero value applies at once, fencing with a
// 5 s bound and naming the change after the operating-system user.
type ApplyOptions struct {
	// By says who asks for the change. Default: user@host of this process.
	By string
	// Reason says why; stored with the version.
	Reason string
	// Expect, if not 0, is the version the change was made from: Apply
	// fails with ErrConflict if the newest version is another.
	Expect int64
	// DryRun validates and plans the change (the new version and the
	// fences it needs) without fencing or storing anything.
	DryRun bool
	// LockTimeout bounds how long each fence waits for the write
	// transactions in flight on its shard. Default 5 s.
	LockTimeout time.Duration
	// Lease is how long a router may go on writing to a fenced shard
	// after it last read the fence (see FenceState.Lease). Default
	// DefaultLease.
	Lease time.Duration
	// Lookup expands the variables of the shard DSNs that fences connect
	// to. Default os.LookupEnv.
	Lookup func(string) (string, bool)
}

// Plan is what Apply did, or with DryRun would do.
type Plan struct {
	From   *Map         `json:"from,omitempty"` // nil for the first version
	To     *Map         `json:"to"`
	Fences []FenceState `json:"fences,omitempty"` // one per shard that loses a range, leaves the map or changes state
}

// Apply validates m and stores it as the next version, in one transaction
// of the control database that also notifies Channel. Before it stores
// the version, it fences every shard whose range shrinks or moves, that
// leaves the map, or whose state changes, so that routers still on the
// old map cannot write to it. If a fence or the store fails, the fences
// already installed are put back as they were.
func (s *Store) Apply(ctx context.Context, m *Map, o ApplyOptions) (*Plan, error) {
	next := m.Clone()
	if err := next.Validate(); err != nil {
		return nil, err
	}
	if o.By == "" {
		o.By = whoami()
	}
	if o.Lookup == nil {
		o.Lookup = os.LookupEnv
	}
	var plan *Plan
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE pgshard.maps IN EXCLUSIVE MODE"); err != nil {
			return storeError(err, -1)
		}
		cur, err := s.version(ctx, tx, 0)
		if err != nil && !errors.Is(err, ErrNoMap) {
			return err
		}
		var from int64
		if cur != nil {
			from = cur.Version
		}
		if o.Expect != 0 && o.Expect != from {
			return fmt.Errorf("%w: made from version %d, the newest is %d", ErrConflict, o.Expect, from)
		}
		next.Version, next.ChangedBy, next.Reason = from+1, o.By, o.Reason
		plan = &Plan{From: cur, To: next, Fences: fences(cur, next)}
		if o.DryRun {
			return nil
		}
		undo, err := s.fence(ctx, plan.Fences, o)
		if err != nil {
			return err
		}
		if err := store(ctx, tx, next); err != nil {
			undo()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !o.DryRun {
		stored, err := s.Version(ctx, plan.To.Version)
		if err == nil {
			plan.To = stored
		}
	}
	return plan, nil
}

func store(ctx context.Context, tx pgx.Tx, m *Map) error {
	if _, err := tx.Exec(ctx, `INSERT INTO pgshard.maps (version, changed_by, reason) VALUES ($1, $2, $3)`,
		m.Version, m.ChangedBy, m.Reason); err != nil {
		return storeError(err, -1)
	}
	for i, sh := range m.Shards {
		replicas := sh.Replicas
		if replicas == nil {
			replicas = []string{}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pgshard.map_shards (version, position, name, range, primary_dsn, replica_dsns, state)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, m.Version, i, sh.Name, sh.Range, sh.Primary, replicas, string(sh.State)); err != nil {
			return storeError(err, -1)
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, strconv.FormatInt(m.Version, 10)); err != nil {
		return storeError(err, -1)
	}
	return nil
}

// fences lists the fences that moving from cur to next needs. A fence
// goes on the node that takes the shard's writes under next (after a
// switchover, the new primary, which has the old one's fence by
// replication), or under cur for a shard that leaves.
func fences(cur, next *Map) []FenceState {
	if cur == nil {
		return nil
	}
	var out []FenceState
	for _, old := range cur.Shards {
		sh, ok := next.Shard(old.Name)
		switch {
		case !ok:
			out = append(out, FenceState{Shard: old.Name, Version: next.Version, Closed: true, Primary: old.Primary})
		case loses(old.Range, sh.Range) || sh.State != old.State:
			out = append(out, FenceState{Shard: old.Name, Range: sh.Range, Version: next.Version, Closed: sh.State == StateFenced, Primary: sh.Primary})
		}
	}
	return out
}

// fence installs each fence on the node it names. On failure it puts back
// those already installed; undo does the same later.
func (s *Store) fence(ctx context.Context, fs []FenceState, o ApplyOptions) (undo func(), err error) {
	type done struct {
		dsn  string
		prev FenceState
	}
	var installed []done
	undo = func() {
		for _, d := range installed {
			_ = withConn(context.WithoutCancel(ctx), d.dsn, func(c *pgx.Conn) error {
				return InstallFence(context.WithoutCancel(ctx), c, d.prev, o.LockTimeout)
			})
		}
	}
	for _, f := range fs {
		dsn, err := ExpandDSN(f.Primary, o.Lookup)
		if err != nil {
			undo()
			return nil, fmt.Errorf("topology: fence shard %s: primary: %w", f.Shard, err)
		}
		err = withConn(ctx, dsn, func(c *pgx.Conn) error {
			prev, ok, err := ReadFence(ctx, c)
			if err != nil {
				return err
			}
			if !ok {
				prev = FenceState{Shard: f.Shard}
			}
			f := f
			f.Primary, f.Lease = "", o.Lease
			if err := InstallFence(ctx, c, f, o.LockTimeout); err != nil {
				return err
			}
			installed = append(installed, done{dsn, prev})
			return nil
		})
		if err != nil {
			undo()
			return nil, fmt.Errorf("topology: fence shard %s: %w", f.Shard, err)
		}
	}
	return undo, nil
}

// withConn runs fn on a connection of its own to dsn.
func withConn(ctx context.Context, dsn string, fn func(*pgx.Conn) error) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return errors.New("not a valid DSN")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	return fn(c)
}

func whoami() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// loses reports whether a shard whose range goes from was to now gives up
// any part of it (ranges of a validated map parse).
func loses(was, now string) bool {
	a, errA := shard.ParseRange(was)
	b, errB := shard.ParseRange(now)
	if errA != nil || errB != nil {
		return true
	}
	endsBefore := b.End != 0 && (a.End == 0 || b.End < a.End)
	return b.Start > a.Start || endsBefore
}
