package reshard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/topology"
)

// SwitchOptions tune SwitchWrites. The zero value checks for a lag of at
// most 1 s and gives the switch 10 s.
type SwitchOptions struct {
	// MaxLag is the lag the targets may have when the switch begins: they
	// must apply everything the source committed before the call within
	// MaxLag, or nothing is fenced. Default 1 s.
	MaxLag time.Duration
	// Timeout bounds the switch from the fence to the point of no return
	// (the fence's wait for writes in flight included). Past it the
	// source is unfenced and the switch fails with ErrSwitchTimeout.
	// Default 10 s.
	Timeout time.Duration
	// By and Reason are stored with the new map version. Default: the
	// operating-system user, and "reshard NAME".
	By, Reason string
}

// SwitchWrites moves the writes of the source's range to the targets:
// it checks the lag, fences the source (routers on the current map have
// their writes refused, and hold and retry them), waits for the targets
// to apply the source's position at the fence, records the point of no
// return, and publishes the map version in which the targets own the
// range. Routers then send the held writes to the targets. On timeout
// before the point of no return the source is unfenced and nothing is
// lost. Run must be running (it applies the changes). Called again after
// a crash, it finishes a switch past its point of no return, or starts
// over one that was not.
func (m *Manager) SwitchWrites(ctx context.Context, name string, o SwitchOptions) (*State, error) {
	if o.MaxLag <= 0 {
		o.MaxLag = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Reason == "" {
		o.Reason = "reshard " + name
	}
	st, _, err := m.load(ctx, name)
	if err != nil {
		return nil, err
	}
	switch {
	case st.Phase == PhaseSwitched:
		return st, nil
	case st.Phase == PhaseSwitching && st.PointOfNoReturn:
		return m.publish(ctx, name, o)
	case st.Phase != PhaseStreaming && st.Phase != PhaseSwitching:
		return st, fmt.Errorf("%w: switch in phase %s (the copy must be done and the stream running)", ErrPhase, st.Phase)
	}

	// The lag: what the source has committed so far must reach the
	// targets within MaxLag; writes then wait at the fence about as long.
	lsn, err := m.mark(ctx, st)
	if err != nil {
		return st, err
	}
	if err := m.waitApplied(ctx, st, lsn, o.MaxLag); err != nil {
		return st, fmt.Errorf("reshard: switch: the targets lag more than %v, nothing fenced: %w", o.MaxLag, err)
	}
	// Reverse replication, set up before any router writes to the
	// targets; the streams skip each other's transactions.
	noReverse, err := m.setupReverse(ctx, st)
	if err != nil {
		return st, fmt.Errorf("reshard: switch: set up the reverse replication, nothing fenced: %w", err)
	}
	if st, err = m.update(ctx, name, func(s *State) error {
		s.Reverse, s.ReverseError = noReverse == "", noReverse
		return nil
	}); err != nil {
		return st, err
	}

	cur, err := m.store.Current(ctx)
	if err != nil {
		return st, err
	}
	if _, ok := cur.Shard(st.Source.Shard); !ok {
		return st, fmt.Errorf("%w: shard %s is no longer in map version %d", ErrPhase, st.Source.Shard, cur.Version)
	}
	began := time.Now()
	deadline := began.Add(o.Timeout)
	var (
		prev     topology.FenceState
		hadFence bool
		before   map[string]string // the fence triggers before ours
	)
	err = m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		f, ok, err := topology.ReadFence(ctx, c)
		if err != nil {
			return err
		}
		if !ok {
			f = topology.FenceState{Shard: st.Source.Shard}
		}
		prev, hadFence = f, ok
		before, err = triggerDefs(ctx, c)
		return err
	})
	if err != nil {
		return st, err
	}
	if st.PreviousFence != nil {
		// A switch of ours was interrupted: its fence is not the one to
		// put back, nor are its triggers.
		prev, hadFence, before = *st.PreviousFence, st.PreviousFence.Version != 0 || st.PreviousFence.Closed || st.PreviousFence.Range != "", nil
	}
	st, err = m.update(ctx, name, func(s *State) error {
		if s.Phase != PhaseStreaming && s.Phase != PhaseSwitching {
			return fmt.Errorf("%w: the workflow is now %s", ErrPhase, s.Phase)
		}
		if s.PreviousFence == nil {
			s.PreviousFence = &prev
		}
		s.Phase, s.FenceLSN, s.Error = PhaseSwitching, "", ""
		return nil
	})
	if err != nil {
		return st, err
	}
	m.o.Logger.Info("reshard: fencing the source", "workflow", name, "shard", st.Source.Shard, "version", cur.Version+1)

	// Fence: routers whose map is older than the next version are refused.
	fence := topology.FenceState{Shard: st.Source.Shard, Version: cur.Version + 1}
	var fenceLSN string
	err = m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		if err := topology.InstallFence(ctx, c, fence, time.Until(deadline)); err != nil {
			return err
		}
		m.o.Logger.Info("reshard: source fenced", "workflow", name, "after", time.Since(began))
		return c.QueryRow(ctx, `SELECT pg_logical_emit_message(true, $1, $2)::text`, markerPrefix, st.Name).Scan(&fenceLSN)
	})
	if err == nil {
		if st, err = m.update(ctx, name, func(s *State) error { s.FenceLSN = fenceLSN; return nil }); err == nil {
			if err := m.crashed("fenced"); err != nil {
				return st, err
			}
			var at pglogrepl.LSN
			if at, err = pglogrepl.ParseLSN(fenceLSN); err == nil {
				err = m.waitApplied(ctx, st, at, max(time.Until(deadline), time.Millisecond))
			}
		}
	}
	if err != nil {
		return st, m.abortSwitch(ctx, name, err, before, hadFence)
	}
	// The point of no return: the targets have every write the source took.
	next := cur.Clone()
	next.Shards = slices.DeleteFunc(next.Shards, func(s topology.Shard) bool { return s.Name == st.Source.Shard })
	for _, t := range st.Targets {
		next.Shards = append(next.Shards, topology.Shard{Name: t.Name, Range: t.Range, Primary: t.Primary, Replicas: t.Replicas})
	}
	if err := next.Validate(); err != nil {
		return st, m.abortSwitch(ctx, name, err, before, hadFence)
	}
	if _, err = m.update(ctx, name, func(s *State) error {
		if s.Phase != PhaseSwitching {
			return fmt.Errorf("%w: the workflow is now %s", ErrPhase, s.Phase)
		}
		s.PointOfNoReturn, s.SwitchedVersion, s.MapVersion = true, cur.Version+1, cur.Version
		return nil
	}); err != nil {
		return st, m.abortSwitch(ctx, name, err, before, hadFence)
	}
	m.o.Logger.Info("reshard: point of no return", "workflow", name, "fence_lsn", fenceLSN, "after", time.Since(began))
	if err := m.crashed("point of no return"); err != nil {
		return st, err
	}
	return m.publish(ctx, name, o)
}

// publish stores the map version that gives the range to the targets
// (once: a version already stored is found), and ends the switch.
func (m *Manager) publish(ctx context.Context, name string, o SwitchOptions) (*State, error) {
	st, _, err := m.load(ctx, name)
	if err != nil {
		return nil, err
	}
	cur, err := m.store.Current(ctx)
	if err != nil {
		return st, err
	}
	if cur.Version < st.SwitchedVersion {
		next := cur.Clone()
		next.Shards = slices.DeleteFunc(next.Shards, func(s topology.Shard) bool { return s.Name == st.Source.Shard })
		for _, t := range st.Targets {
			next.Shards = append(next.Shards, topology.Shard{Name: t.Name, Range: t.Range, Primary: t.Primary, Replicas: t.Replicas})
		}
		_, err := m.store.Apply(ctx, next, topology.ApplyOptions{By: o.By, Reason: o.Reason, Expect: st.MapVersion, Lookup: m.o.Lookup})
		if err != nil && !errors.Is(err, topology.ErrConflict) {
			return st, fmt.Errorf("reshard: switch past its point of no return: publish map version %d: %w (run switch-writes again)", st.SwitchedVersion, err)
		}
		if cur, err = m.store.Current(ctx); err != nil {
			return st, err
		}
	}
	if _, ok := cur.Shard(st.Source.Shard); ok {
		return st, fmt.Errorf("reshard: switch past its point of no return: map version %d was stored by another change and still has shard %s: "+
			"the targets hold its range's data; apply a map that gives the range to them", cur.Version, st.Source.Shard)
	}
	st, err = m.update(ctx, name, func(s *State) error {
		s.Phase, s.SwitchedVersion = PhaseSwitched, cur.Version
		return nil
	})
	if err == nil {
		m.o.Logger.Info("reshard: switched", "workflow", name, "version", st.SwitchedVersion)
	}
	return st, err
}

// abortSwitch puts the source's fence back as it was and the workflow
// back to streaming; cause is why.
func (m *Manager) abortSwitch(ctx context.Context, name string, cause error, before map[string]string, hadFence bool) error {
	ctx = context.WithoutCancel(ctx)
	st, _, err := m.load(ctx, name)
	if err != nil {
		return errors.Join(cause, err)
	}
	prev := topology.FenceState{Shard: st.Source.Shard}
	if st.PreviousFence != nil {
		prev = *st.PreviousFence
	}
	if err := m.unfence(ctx, st, before, prev, hadFence); err != nil {
		return fmt.Errorf("reshard: switch failed (%v) and the source could not be unfenced: %w: run switch-writes or cancel again", cause, err)
	}
	_, err = m.update(ctx, name, func(s *State) error {
		s.Phase, s.FenceLSN, s.PreviousFence, s.Error = PhaseStreaming, "", nil, "switch aborted: "+cause.Error()
		return nil
	})
	m.o.Logger.Warn("reshard: switch aborted, source unfenced", "workflow", name, "err", cause)
	return errors.Join(fmt.Errorf("%w: %v; the source is unfenced, nothing is lost", ErrSwitchTimeout, cause), err)
}

// Complete ends a switched workflow: the slot, the publication and the
// TRUNCATE guards are dropped on the source, which is retired (its rows
// stay, and its fence refuses every router's writes).
func (m *Manager) Complete(ctx context.Context, name string) (*State, error) {
	st, err := m.update(ctx, name, func(st *State) error {
		if st.Phase != PhaseSwitched && st.Phase != PhaseCompleted {
			return fmt.Errorf("%w: complete in phase %s (switch the writes first, or cancel)", ErrPhase, st.Phase)
		}
		st.Phase = PhaseCompleted
		return nil
	})
	if err != nil {
		return st, err
	}
	if err := m.dropSource(ctx, st); err != nil {
		return st, err
	}
	if err := m.dropReverse(ctx, st); err != nil {
		return st, err
	}
	m.o.Logger.Info("reshard: completed", "workflow", name)
	return st, nil
}
