package app

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// failure maps a handler's error to the status and message the client
// gets. A database that cannot serve (no primary, no fresh replica, a
// connection lost, a timeout) is a 503 with the reason: in particular a
// write that was not acknowledged is never answered 2xx, and a 503 means
// that nothing was committed. A write whose COMMIT may have run but whose
// answer was lost (replica.ErrOutcomeUnknown) is a 504 that says so: only
// a retry with the same Idempotency-Key can tell, without a second row.
// Messages pass through the redactor, and never carry a stack trace.
func (s *Server) failure(err error) (int, string) {
	if he, ok := errors.AsType[*httpError](err); ok {
		return he.status, he.msg
	}
	msg := s.red.String(err.Error())
	switch {
	case errors.Is(err, replica.ErrOutcomeUnknown):
		return StatusOutcomeUnknown, "outcome unknown: the write may or may not have been committed; retry with the same " +
			IdempotencyHeader + " (" + msg + ")"
	case errors.Is(err, replica.ErrCommitLSN):
		// Committed, but the session's position was lost with the
		// connection: not a 503, which promises nothing was committed. A
		// retry with the same key returns the stored answer.
		return StatusOutcomeUnknown, "committed, but the answer was lost; retry with the same " +
			IdempotencyHeader + " to get it (" + msg + ")"
	case errors.Is(err, router.ErrInvalidToken):
		return http.StatusBadRequest, msg
	case errors.Is(err, replica.ErrNoPrimary), errors.Is(err, replica.ErrSplitBrain), errors.Is(err, replica.ErrNoReplica):
		return http.StatusServiceUnavailable, msg
	case errors.Is(err, router.ErrClosed), errors.Is(err, replica.ErrClosed):
		return http.StatusServiceUnavailable, "server is shutting down"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "database did not answer in time: " + msg
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "request cancelled: " + msg
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && !transient(pe.Code) {
		return http.StatusInternalServerError, "database error: " + msg
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return http.StatusServiceUnavailable, "database unreachable: " + msg
	}
	return http.StatusServiceUnavailable, "database unavailable: " + msg
}

// StatusOutcomeUnknown is the status of a write whose outcome is unknown:
// 504, as a gateway's answer when the server behind it did not answer.
const StatusOutcomeUnknown = http.StatusGatewayTimeout

// transient reports whether a SQLSTATE means "try again later": connection
// exceptions, insufficient resources, operator intervention (shutdown,
// recovery), serialization failures and deadlocks, read-only transaction.
func transient(code string) bool {
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "08", "53", "57", "40":
		return true
	}
	return code == "25006" // read_only_sql_transaction: a demoted primary
}
