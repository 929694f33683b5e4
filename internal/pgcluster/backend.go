package pgcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
)

// backend starts the servers of one kind. Implementations are safe for concurrent use.
type backend interface {
	// startPrimary makes and starts a primary that has the cluster's role and database,
	// and returns once it accepts connections.
	startPrimary(ctx context.Context, name string) (server, error)
	// startReplica clones primary into a streaming replica fed through replication slot
	// slot, and returns once it accepts connections.
	startReplica(ctx context.Context, name, slot string, primary server) (server, error)
	// close removes what the backend made besides its servers.
	close(ctx context.Context) error
	// describe says what runs the servers, e.g. "local PostgreSQL 15.14".
	describe() string
	// caFile is the PEM file of the CA that signed the servers' certificate
	// (Options.TLS), or "".
	caFile() string
}

// server is one PostgreSQL server as its backend runs it. Implementations are safe for
// concurrent use; each method waits until its change is done.
type server interface {
	port() int
	pid() int // 0 when stopped or not a local process
	start(ctx context.Context) error
	stop(ctx context.Context) error
	kill(ctx context.Context) error
	// freeze stops every process of the server (SIGSTOP, docker pause); thaw lets
	// them run again. stop, kill and close thaw a frozen server first.
	freeze(ctx context.Context) error
	thaw(ctx context.Context) error
	frozen() bool
	// close stops the server for good; its backend's close removes the data.
	close(ctx context.Context) error
	logTail(ctx context.Context, lines int) string
}

// newBackend picks the backend that o asks for, or that $PGSHARD_PG_BACKEND names.
func newBackend(ctx context.Context, o Options, ports *portPicker) (backend, Backend, error) {
	want := o.Backend
	if want == "" {
		want = Backend(os.Getenv(EnvBackend))
	}
	kind, err := ParseBackend(string(want))
	if err != nil {
		return nil, "", err
	}
	if kind == BackendLocal || o.TLS {
		if kind == BackendDocker {
			return nil, "", fmt.Errorf("pgcluster: Options.TLS needs the local backend, and %s=docker", EnvBackend)
		}
		b, err := newLocal(ctx, o, ports)
		return b, kind, err
	}
	pool, pingErr := pingDocker(ctx)
	if pingErr == nil {
		b, err := newDocker(o, pool, ports)
		return b, BackendDocker, err
	}
	if kind == BackendDocker {
		return nil, "", fmt.Errorf("%w: %v", ErrNoDocker, pingErr)
	}
	b, err := newLocal(ctx, o, ports)
	return b, BackendLocal, err
}

// portPicker hands out free loopback ports, never the same one twice to one cluster.
// It is safe for concurrent use.
type portPicker struct {
	mu   sync.Mutex
	used map[int]bool
}

func (p *portPicker) pick() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used == nil {
		p.used = map[int]bool{}
	}
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("pgcluster: pick a port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !p.used[port] {
			p.used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("pgcluster: pick a port: no unused port after 20 tries")
}
