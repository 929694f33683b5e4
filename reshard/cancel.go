package reshard

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/topology"
)

// Cancel abandons a workflow before its point of no return, or after
// Reverse: it puts back the source's fence of before a switch that was
// interrupted, drops the slots (ending the streams that read them), the
// publications and the
// TRUNCATE guards on the source, and empties the targets. Running it
// again finishes what an interrupted Cancel left.
func (m *Manager) Cancel(ctx context.Context, name string) (*State, error) {
	var unfence *State
	st, err := m.update(ctx, name, func(st *State) error {
		unfence = nil
		switch {
		case st.Phase == PhaseSwitching && !st.PointOfNoReturn:
			unfence = st
			fallthrough
		case st.Phase == PhaseCreated || st.Phase == PhaseCopying || st.Phase == PhaseStreaming || st.Phase == PhaseCancelled ||
			st.Phase == PhaseReversed:
			st.Phase = PhaseCancelled
			return nil
		}
		return fmt.Errorf("%w: cancel in phase %s: the writes have moved", ErrPhase, st.Phase)
	})
	if err != nil {
		return st, err
	}
	if unfence != nil && unfence.PreviousFence != nil {
		err := m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
			return topology.InstallFence(ctx, c, *unfence.PreviousFence, 10*time.Second)
		})
		if err != nil {
			return st, fmt.Errorf("reshard: cancel: unfence the source: %w", err)
		}
	}
	if err := m.dropSource(ctx, st); err != nil {
		return st, err
	}
	if err := m.dropReverse(ctx, st); err != nil {
		return st, err
	}
	if err := m.emptyTargets(ctx, st); err != nil {
		return st, fmt.Errorf("reshard: cancel: empty the targets: %w", err)
	}
	m.o.Logger.Info("reshard: cancelled", "workflow", name)
	return st, nil
}

// dropSource drops what the workflow made on the source.
func (m *Manager) dropSource(ctx context.Context, st *State) error {
	if err := m.dropSlot(ctx, st); err != nil {
		return err
	}
	return m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		sql := "DROP PUBLICATION IF EXISTS " + pgx.Identifier{st.Publication}.Sanitize()
		for _, t := range st.Tables {
			sql += fmt.Sprintf("; DROP TRIGGER IF EXISTS %s ON %s", guardTrigger, quoteTable(t.Name))
		}
		if _, err := c.Exec(ctx, sql); err != nil {
			return fmt.Errorf("reshard: source %s: %w", st.Source.Shard, err)
		}
		return nil
	})
}
