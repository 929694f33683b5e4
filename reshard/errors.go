package reshard

import (
	"errors"
	"fmt"
)

var (
	// ErrPreflight is wrapped by every reason Create refuses a workflow.
	ErrPreflight = errors.New("reshard: preflight")
	// ErrPhase is returned when a step is asked in a phase that does not
	// allow it (cancel after the switch, switch before the copy is done).
	ErrPhase = errors.New("reshard: not allowed in this phase")
	// ErrSlotLost is returned when the source has no longer the
	// workflow's replication slot, as after a failover of the source's
	// primary before PostgreSQL 17: changes may have been lost, so the
	// workflow stops instead of skipping them.
	ErrSlotLost = errors.New("reshard: the replication slot is gone from the source")
	// ErrSchemaChanged is returned when a moving table's columns change
	// on the source during the workflow.
	ErrSchemaChanged = errors.New("reshard: a moving table changed")
	// ErrTruncate is returned when the stream carries a TRUNCATE.
	ErrTruncate = errors.New("reshard: TRUNCATE of a moving table")
	// ErrSwitchTimeout is returned by SwitchWrites when the targets did
	// not catch up in time; the source was unfenced and nothing is lost.
	ErrSwitchTimeout = errors.New("reshard: switch timed out before the point of no return")
)

// stopError marks an error that a retry cannot cure: Run stops on it.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }

func stop(err error) error { return &stopError{err} }

func stopf(sentinel error, format string, args ...any) error {
	return &stopError{fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}

func isStop(err error) bool {
	var s *stopError
	return errors.As(err, &s)
}
