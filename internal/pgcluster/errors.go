package pgcluster

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNoPostgres means that no backend can run PostgreSQL on this machine.
	ErrNoPostgres = errors.New("pgcluster: no PostgreSQL server binaries (15 or newer) found: " +
		"install the PostgreSQL server: apt-get install -y postgresql " +
		"(or run a Docker engine and set " + EnvBackend + "=docker)")

	// ErrNoDocker means that the docker backend was asked for but no Docker engine answered.
	ErrNoDocker = errors.New("pgcluster: backend docker selected but no Docker engine answered " +
		"(start one, or set " + EnvBackend + "=local)")

	// ErrUnknownBackend means that a backend name is not auto, local or docker.
	ErrUnknownBackend = errors.New("pgcluster: unknown backend")

	// ErrUnknownNode means that a cluster has no node of the given name.
	ErrUnknownNode = errors.New("pgcluster: unknown node")

	// ErrClosed means that the cluster was closed.
	ErrClosed = errors.New("pgcluster: cluster closed")
)

// NodeError reports, immutable and safe for concurrent use, an operation that failed on
// one node, with the end of that node's server log when there is one.
type NodeError struct {
	Node string // node name, e.g. "shard0-replica1"
	Op   string // what was being done, e.g. "start"
	Log  string // last lines of the server log; may be empty
	Err  error
}

// Error names the node, what was being done, and the end of its log.
func (e *NodeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pgcluster: %s %s: %v", e.Op, e.Node, e.Err)
	if log := strings.TrimSpace(e.Log); log != "" {
		b.WriteString("\n--- last lines of the server log ---\n")
		b.WriteString(log)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *NodeError) Unwrap() error { return e.Err }

// lastLines returns at most n trailing lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
