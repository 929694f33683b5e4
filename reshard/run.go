package reshard

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Run carries the workflow on from where its state says it is: it copies
// (again, if a copy was interrupted), then streams changes to the targets
// until the switch, and after it the targets' changes back to the source
// (so that Reverse can undo it), until ctx ends (it then returns ctx's
// error) or the workflow is completed, cancelled or reversed (nil). An error a retry may cure (a connection
// lost, a target restarted) is retried after Options.RetryInterval; one
// that needs the operator (the slot lost, a moving table changed, a
// TRUNCATE) is recorded in the state and returned.
func (m *Manager) Run(ctx context.Context, name string) error {
	for {
		err := m.step(ctx, name)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			st, _, err := m.load(ctx, name)
			if err != nil {
				return err
			}
			if st.done() {
				return nil
			}
			continue
		}
		if isStop(err) || errors.Is(err, ErrPhase) {
			_, _ = m.update(context.WithoutCancel(ctx), name, func(st *State) error {
				st.Error = err.Error()
				return nil
			})
			return err
		}
		m.o.Logger.Warn("reshard: retrying", "workflow", name, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(m.o.RetryInterval):
		}
	}
}

// step does the work of the workflow's current phase once.
func (m *Manager) step(ctx context.Context, name string) error {
	st, _, err := m.load(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case st.done():
		return nil
	case st.Phase == PhaseCreated || st.Phase == PhaseCopying:
		return m.copyPhase(ctx, name)
	case streaming(st.Phase):
		l, err := forwardLink(st)
		if err != nil {
			return err
		}
		return m.stream(ctx, name, l)
	case st.Phase == PhaseSwitched:
		return m.reverseStreams(ctx, st)
	}
	return fmt.Errorf("%w: unknown phase %q", ErrPhase, st.Phase)
}
