package reshard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// reverseName names a target's reverse publication and slot.
func reverseName(st *State) string { return "pgshard_reverse_" + st.Name }

// reverseKey is the row of the source's pgshard.reshard_apply that holds
// the reverse stream's position from target t.
func reverseKey(st *State, t Target) string { return st.Name + "/reverse/" + t.Name }

// reverseLink is the stream of target i's changes to the source.
func reverseLink(st *State, i int) *link {
	t := st.Targets[i]
	return &link{
		from: "target " + t.Name, dsn: t.Primary, slot: reverseName(st), pub: reverseName(st),
		to:     []Target{{Name: st.Source.Shard, Range: "-", Primary: st.Source.Primary}},
		rt:     &router{ranges: []shard.Range{{}}},
		posKey: reverseKey(st, t),
		lost:   "cancel the workflow's reverse: 'reverse' can no longer be done",
		live:   func(s *State) bool { return s.Phase == PhaseSwitched },
	}
}

// setupReverse makes, on each target, a publication of the sharded tables
// and a slot from which the source can be fed every change made there
// after the switch, and records each slot's start on the source. It runs
// in the switch, once the targets have every write the source took and
// before any router writes to them. A target without wal_level = logical
// leaves the workflow without a reverse, which Reverse then refuses.
func (m *Manager) setupReverse(ctx context.Context, st *State) (string, error) {
	var tables []string
	for _, t := range st.Tables {
		if !t.Reference {
			tables = append(tables, quoteTable(t.Name))
		}
	}
	for _, t := range st.Targets {
		var (
			level        string
			canReplicate bool
		)
		err := m.withConn(ctx, "target "+t.Name, t.Primary, func(c *pgx.Conn) error {
			if err := c.QueryRow(ctx, `SELECT current_setting('wal_level'),
				(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)`).Scan(&level, &canReplicate); err != nil {
				return err
			}
			if level != "logical" || !canReplicate {
				return nil
			}
			pub := pgx.Identifier{reverseName(st)}.Sanitize()
			_, err := c.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pub+"; CREATE PUBLICATION "+pub+" FOR TABLE "+strings.Join(tables, ", "))
			return err
		})
		if err != nil {
			return "", err
		}
		if level != "logical" {
			return fmt.Sprintf("target %s has wal_level %s: no reverse replication, the switch cannot be undone with reverse", t.Name, level), nil
		}
		if !canReplicate {
			return fmt.Sprintf("the role of target %s's DSN may not replicate: no reverse replication, the switch cannot be undone with reverse", t.Name), nil
		}
	}
	for _, t := range st.Targets {
		repl, err := m.replicationConnTo(ctx, "target "+t.Name, t.Primary)
		if err != nil {
			return "", err
		}
		_, _ = repl.Exec(ctx, "DROP_REPLICATION_SLOT "+reverseName(st)).ReadAll()
		slot, err := pglogrepl.CreateReplicationSlot(ctx, repl, reverseName(st), "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
		repl.Close(context.WithoutCancel(ctx))
		if err != nil {
			return "", fmt.Errorf("target %s: reverse slot: %w", t.Name, err)
		}
		err = m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, applySchema)
			if err == nil {
				_, err = c.Exec(ctx, `INSERT INTO pgshard.reshard_apply (workflow, lsn) VALUES ($1, $2)
					ON CONFLICT (workflow) DO UPDATE SET lsn = $2, commit_time = NULL, updated_at = clock_timestamp()`, reverseKey(st, t), slot.ConsistentPoint)
			}
			return err
		})
		if err != nil {
			return "", err
		}
	}
	return "", nil
}

// reverseStreams runs every target's reverse stream until one fails or
// the workflow leaves the switched phase. Without a reverse, it waits for
// that.
func (m *Manager) reverseStreams(ctx context.Context, st *State) error {
	if !st.Reverse {
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(m.o.StatusInterval):
			}
			cur, _, err := m.load(ctx, st.Name)
			if err != nil || cur.Phase != PhaseSwitched {
				return err
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(st.Targets))
	var wg sync.WaitGroup
	for i := range st.Targets {
		wg.Go(func() {
			errs[i] = m.stream(ctx, st.Name, reverseLink(st, i))
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// ReverseOptions tune Reverse. The zero value gives it 10 s.
type ReverseOptions struct {
	// Timeout bounds the wait for the source to apply the targets'
	// position at their fence. Past it the targets are unfenced and
	// Reverse fails with nothing lost. Default 10 s.
	Timeout time.Duration
	// By and Reason are stored with the map version. Default: the
	// operating-system user, and "reshard NAME reversed".
	By, Reason string
}

// Reverse undoes a switch: it fences the targets (routers hold the writes
// they refuse), waits until the source has applied, through the reverse
// streams that Run feeds it, everything the targets took, and publishes
// the map version in which the source owns its range again. The targets
// are then retired; cancel drops what the workflow made and empties them.
func (m *Manager) Reverse(ctx context.Context, name string, o ReverseOptions) (*State, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Reason == "" {
		o.Reason = "reshard " + name + " reversed"
	}
	st, _, err := m.load(ctx, name)
	if err != nil {
		return nil, err
	}
	switch {
	case st.Phase == PhaseReversed:
		return st, nil
	case st.Phase != PhaseSwitched:
		return st, fmt.Errorf("%w: reverse in phase %s (only a switched workflow is reversed)", ErrPhase, st.Phase)
	case !st.Reverse:
		return st, fmt.Errorf("%w: the workflow has no reverse replication: %s", ErrPhase, st.ReverseError)
	}
	cur, err := m.store.Current(ctx)
	if err != nil {
		return st, err
	}
	for _, t := range st.Targets {
		if _, ok := cur.Shard(t.Name); !ok {
			return st, fmt.Errorf("%w: shard %s is no longer in map version %d", ErrPhase, t.Name, cur.Version)
		}
	}
	deadline := time.Now().Add(o.Timeout)
	version := cur.Version + 1
	prev := make([]topology.FenceState, len(st.Targets))
	fenced := 0
	undo := func(cause error) error {
		for i := range fenced {
			t := st.Targets[i]
			_ = m.withConn(context.WithoutCancel(ctx), "target "+t.Name, t.Primary, func(c *pgx.Conn) error {
				return topology.InstallFence(context.WithoutCancel(ctx), c, prev[i], 10*time.Second)
			})
		}
		return fmt.Errorf("%w: reverse: %v; the targets are unfenced, nothing is lost", ErrSwitchTimeout, cause)
	}
	marks := make([]pglogrepl.LSN, len(st.Targets))
	for i, t := range st.Targets {
		err := m.withConn(ctx, "target "+t.Name, t.Primary, func(c *pgx.Conn) error {
			f, ok, err := topology.ReadFence(ctx, c)
			if err != nil {
				return err
			}
			if !ok {
				f = topology.FenceState{Shard: t.Name}
			}
			prev[i] = f
			if err := topology.InstallFence(ctx, c, topology.FenceState{Shard: t.Name, Version: version}, time.Until(deadline)); err != nil {
				return err
			}
			fenced++
			var lsn string
			if err := c.QueryRow(ctx, `SELECT pg_logical_emit_message(true, $1, $2)::text`, markerPrefix, st.Name).Scan(&lsn); err != nil {
				return err
			}
			marks[i], err = pglogrepl.ParseLSN(lsn)
			return err
		})
		if err != nil {
			return st, undo(err)
		}
	}
	m.o.Logger.Info("reshard: targets fenced for the reverse", "workflow", name)
	for i, t := range st.Targets {
		err := m.waitPosition(ctx, "source "+st.Source.Shard, st.Source.Primary, reverseKey(st, t), marks[i], max(time.Until(deadline), time.Millisecond))
		if err != nil {
			return st, undo(err)
		}
	}
	// The source has every write: let routers of the next map write to it.
	err = m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		return topology.InstallFence(ctx, c, topology.FenceState{Shard: st.Source.Shard, Range: st.Source.Range, Version: version}, 10*time.Second)
	})
	if err != nil {
		return st, undo(err)
	}
	next := cur.Clone()
	next.Shards = slices.DeleteFunc(next.Shards, func(s topology.Shard) bool {
		return slices.ContainsFunc(st.Targets, func(t Target) bool { return t.Name == s.Name })
	})
	next.Shards = append(next.Shards, topology.Shard{Name: st.Source.Shard, Range: st.Source.Range, Primary: st.Source.Primary, Replicas: st.Source.Replicas})
	if _, err := m.store.Apply(ctx, next, topology.ApplyOptions{By: o.By, Reason: o.Reason, Expect: cur.Version, Lookup: m.o.Lookup}); err != nil {
		return st, undo(err)
	}
	st, err = m.update(ctx, name, func(s *State) error {
		s.Phase, s.ReversedVersion = PhaseReversed, version
		return nil
	})
	if err == nil {
		m.o.Logger.Info("reshard: reversed", "workflow", name, "version", version)
	}
	return st, err
}

// dropReverse drops the reverse slots and publications on the targets.
func (m *Manager) dropReverse(ctx context.Context, st *State) error {
	if !st.Reverse {
		return nil
	}
	var errs []error
	for _, t := range st.Targets {
		err := m.withConn(ctx, "target "+t.Name, t.Primary, func(c *pgx.Conn) error {
			if err := dropSlotOn(ctx, c, reverseName(st)); err != nil {
				return err
			}
			_, err := c.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{reverseName(st)}.Sanitize())
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", t.Name, err))
		}
	}
	return errors.Join(errs...)
}
