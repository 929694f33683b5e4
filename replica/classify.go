package replica

import (
	"context"
	"errors"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// errClass is what an error says about the node and the statement. Every
// decision the set takes on an error (retry elsewhere, count against a
// node, report an unknown outcome) starts from this one classification.
type errClass int

const (
	// errNone: no error.
	errNone errClass = iota
	// errStatement: the server answered with an error about the statement
	// (or pgx.ErrNoRows). The node is fine; nothing to retry.
	errStatement
	// errCanceled: the caller's context ended.
	errCanceled
	// errDown: evidence that the server is down: it refused the
	// connection, or said it cannot accept connections now (starting up,
	// shutting down, in recovery).
	errDown
	// errBusy: the server is up but refused a session: too many
	// connections, authentication, a missing database.
	errBusy
	// errLost: the connection broke or stopped answering. It says nothing
	// certain of the server: a terminated backend, a dropped packet and a
	// crash look alike from inside one session.
	errLost
)

// classify says what err means for a statement run under the caller's ctx.
func classify(ctx context.Context, err error) errClass {
	if err == nil {
		return errNone
	}
	if ctx.Err() != nil {
		return errCanceled
	}
	if errors.Is(err, pgx.ErrNoRows) || errors.Is(err, pgx.ErrTxCommitRollback) {
		return errStatement
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "57P03": // cannot_connect_now
			return errDown
		case pgErr.Code == "57P01" || pgErr.Code == "57P02": // terminated: this session, or the server
			return errLost
		case strings.HasPrefix(pgErr.Code, "53"), strings.HasPrefix(pgErr.Code, "28"), pgErr.Code == "3D000":
			return errBusy
		}
		return errStatement
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return errDown
	}
	return errLost
}

// retryable reports whether a read that failed with class c may be sent to
// another node: the failure was the node's, not the statement's or the
// caller's.
func (c errClass) retryable() bool { return c == errDown || c == errBusy || c == errLost }

// ConnError reports whether err is a failure to reach or talk to a node
// (refused, reset, timed out, shutting down, out of connections) rather
// than an error the server returned for the statement. A read that failed
// so can be run again: the set sends it to another node when it can.
func ConnError(err error) bool { return classify(context.Background(), err).retryable() }

// cleanError returns err's text. pgx never puts the password in its
// errors; this is the one place to change if that ever differs.
func cleanError(err error) string {
	return err.Error()
}
