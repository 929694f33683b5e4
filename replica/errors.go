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
