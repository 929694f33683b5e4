package reshard

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Cancel abandons a workflow before its switch: it drops the slot (ending
// the stream that reads it), the publication and the TRUNCATE guards on
// the source, and empties the targets. Running it again finishes what an
// interrupted Cancel left.
func (m *Manager) Cancel(ctx context.Context, name string) (*State, error) {
	st, err := m.update(ctx, name, func(st *State) error {
		switch st.Phase {
		case PhaseCreated, PhaseCopying, PhaseStreaming, PhaseCancelled:
			st.Phase = PhaseCancelled
			return nil
		}
		return fmt.Errorf("%w: cancel in phase %s: the writes have moved (use reverse)", ErrPhase, st.Phase)
	})
	if err != nil {
		return st, err
	}
	if err := m.dropSource(ctx, st); err != nil {
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
