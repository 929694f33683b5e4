package replica

import (
	"errors"
	"fmt"
)

var (
	// ErrNoPrimary means that no node of the set reports itself a primary,
	// so a write cannot be sent anywhere.
	ErrNoPrimary = errors.New("replica: no primary")
	// ErrSplitBrain means that more than one node reports itself a primary;
	// writes are refused rather than sent to either.
	ErrSplitBrain = errors.New("replica: more than one primary")
	// ErrNoReplica means that no node may serve a read: no replica is
	// fresh enough and the fallback policy, or its rate cap, forbids the primary.
	ErrNoReplica = errors.New("replica: no eligible replica")
	// ErrOutcomeUnknown means that a write's COMMIT may have run but its
	// answer was lost (the connection broke or the node stopped answering
	// after the commit was sent). The write may or may not be durable; a
	// caller that retries it must make the retry idempotent. Every other
	// error of a write means that nothing was committed.
	ErrOutcomeUnknown = errors.New("replica: write outcome unknown")
	// ErrClosed is returned by every call on a closed Set.
	ErrClosed = errors.New("replica: set closed")
	// ErrInvalidLSN is wrapped by ParseLSN's errors.
	ErrInvalidLSN = errors.New("replica: invalid LSN")
	// ErrInvalidConfig is wrapped by every configuration error of New.
	ErrInvalidConfig = errors.New("replica: invalid config")
)

// setError prefixes an error with the set's (shard's) name, keeping it
// reachable through errors.Is and errors.As.
func setError(set string, err error) error {
	return fmt.Errorf("shard %s: %w", set, err)
}
