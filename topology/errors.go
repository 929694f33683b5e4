package topology

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrInvalidMap is wrapped by every error about a map that cannot be
	// stored: a gap, an overlap, a node listed twice, a literal password.
	ErrInvalidMap = errors.New("topology: invalid map")
	// ErrNoMap is returned when the store holds no map yet (run Init and
	// Apply a first map).
	ErrNoMap = errors.New("topology: no map stored")
	// ErrNotInitialized is returned when the control database has no
	// pgshard schema (run Init).
	ErrNotInitialized = errors.New("topology: the control database has no pgshard schema (run pgshard topology init)")
	// ErrConflict is returned by Apply when ApplyOptions.Expect is set and
	// another change was stored first.
	ErrConflict = errors.New("topology: the map changed meanwhile")
	// ErrFenced is wrapped by FenceError.
	ErrFenced = errors.New("topology: write refused by the shard's fence")
)

// FenceSQLState is the SQLSTATE a shard's fence raises when it refuses a
// write routed with a map older than its last change.
const FenceSQLState = "PGS01"

// FenceError describes a write refused by a shard's fence.
type FenceError struct {
	// Version is the map version the fence was installed for: a router
	// must hold at least this version to write to the shard.
	Version int64
	// Closed says the shard refuses every router's writes (its state is
	// fenced), whatever the map version.
	Closed bool
	// Err is the server's error; nil when the router held the write
	// without sending it (its map says the shard is fenced).
	Err *pgconn.PgError
}

// Error says what the fence refused.
func (e *FenceError) Error() string {
	if e.Closed {
		return fmt.Sprintf("topology: shard fenced at map version %d: writes refused", e.Version)
	}
	return fmt.Sprintf("topology: write routed with a map older than version %d refused by the shard's fence", e.Version)
}

// Unwrap returns ErrFenced and the server's error, if any.
func (e *FenceError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrFenced}
	}
	return []error{ErrFenced, e.Err}
}

// IsFenced reports whether err is a refusal by a shard's fence, and if so
// returns it with the version the fence asks for.
func IsFenced(err error) (*FenceError, bool) {
	var fe *FenceError
	if errors.As(err, &fe) {
		return fe, true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != FenceSQLState {
		return nil, false
	}
	fe = &FenceError{Err: pe}
	// The trigger writes its state in the detail: "version=N closed=B".
	for _, f := range strings.Fields(pe.Detail) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "version":
			fe.Version, _ = strconv.ParseInt(v, 10, 64)
		case "closed":
			fe.Closed = v == "true"
		}
	}
	return fe, true
}
