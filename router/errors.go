package router

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/replica"
)

var (
	// ErrInvalidConfig is wrapped by every configuration error of Open.
	ErrInvalidConfig = errors.New("router: invalid config")
	// ErrInvalidToken is wrapped by every error of ParseSession.
	ErrInvalidToken = errors.New("router: invalid session token")
	// ErrClosed is returned by calls on a closed Router.
	ErrClosed = errors.New("router: closed")
	// ErrNotRouterTx is returned by Invalidate when given a transaction
	// that did not come from Target.Tx.
	ErrNotRouterTx = errors.New("router: Invalidate needs the transaction passed to a Target.Tx function")
)

// ShardError is one shard's failure in a call that ran on several.
type ShardError struct {
	Shard string
	Err   error
}

// Error names the shard and its error, the shard once.
func (e *ShardError) Error() string { return named(e.Shard, e.Err).Error() }

// Unwrap returns the shard's error.
func (e *ShardError) Unwrap() error { return e.Err }

// MultiError collects the failures of a call on every shard (ExecAll,
// Gather), one per failed shard, in shard order.
type MultiError struct {
	Errs []*ShardError
}

// Error names every failed shard with its error.
func (e *MultiError) Error() string {
	parts := make([]string, len(e.Errs))
	for i, se := range e.Errs {
		parts[i] = se.Error()
	}
	return fmt.Sprintf("router: %d of the shards failed: %s", len(e.Errs), strings.Join(parts, "; "))
}

// Unwrap lets errors.Is and errors.As see every shard's error.
func (e *MultiError) Unwrap() []error {
	errs := make([]error, len(e.Errs))
	for i, se := range e.Errs {
		errs[i] = se
	}
	return errs
}

// Shards names the shards that failed.
func (e *MultiError) Shards() []string {
	names := make([]string, len(e.Errs))
	for i, se := range e.Errs {
		names[i] = se.Shard
	}
	return names
}

// PartialError is returned by Gather with Partial set when some shards
// failed: the results hold the other shards' rows.
type PartialError struct {
	MultiError
}

// Error says the results are partial and names the failed shards.
func (e *PartialError) Error() string {
	return "router: partial results: " + e.MultiError.Error()
}

// named returns err naming the shard exactly once: errors of the replica
// set already start with "shard NAME: ".
func named(shard string, err error) error {
	if strings.HasPrefix(err.Error(), "shard "+shard+": ") {
		return err
	}
	return fmt.Errorf("shard %s: %w", shard, err)
}

// fail turns an error of a call on t into what the caller should see: the
// shard named once, and, when the call failed because the caller's context
// ended or the router closed, that cause rather than its symptom (a pool
// that closed under the call, no primary, no replica). A server's own
// answer (a *pgconn.PgError) and pgx.ErrNoRows are kept as they are.
func (t Target) fail(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	err = t.r.noteFence(err)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		switch {
		case t.r.closed.Load():
			return fmt.Errorf("shard %s: %w", t.s.name, ErrClosed)
		case ctx.Err() != nil && errors.Is(err, replica.ErrOutcomeUnknown):
			// The write was sent before ctx ended and its answer lost: it
			// may have committed, and the caller must know that.
			return fmt.Errorf("shard %s: %w: %w", t.s.name, replica.ErrOutcomeUnknown, context.Cause(ctx))
		case ctx.Err() != nil:
			// The symptom (no primary, a closed connection) is dropped:
			// it says nothing of the nodes.
			return fmt.Errorf("shard %s: %w", t.s.name, context.Cause(ctx))
		}
	}
	return named(t.s.name, err)
}
