package pgcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
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

// newBackend picks the backend that o asks for, or that $PGSHARD_PG_BACKEND names. When
// auto picks local, why says why in one line.
func newBackend(ctx context.Context, o Options, ports *portPicker) (b backend, kind Backend, why string, err error) {
	want, source := o.Backend, "Options.Backend"
	if want == "" {
		want, source = Backend(os.Getenv(EnvBackend)), EnvBackend
	}
	if kind, err = ParseBackend(string(want)); err != nil {
		return nil, "", "", err
	}
	local := func(why string) (backend, Backend, string, error) {
		b, err := newLocal(ctx, o, ports)
		return b, BackendLocal, why, err
	}
	if kind == BackendLocal {
		return local("")
	}
	// What only the local backend does. A docker backend chosen by the environment, as
	// in make test-docker, yields to it; one chosen by Options does not.
	if opt := localOnly(o); opt != "" {
		if kind == BackendDocker && source == "Options.Backend" {
			return nil, "", "", fmt.Errorf("pgcluster: Options.%s needs the local backend, and Options.Backend is docker", opt)
		}
		return local("Options." + opt + " needs the local backend")
	}
	pool, pingErr := pingDocker(ctx)
	if pingErr != nil {
		if kind == BackendDocker {
			return nil, "", "", fmt.Errorf("%w: %v", ErrNoDocker, pingErr)
		}
		return local(fmt.Sprintf("auto: no Docker engine answered (%v)", firstLine(pingErr)))
	}
	// auto never builds nor pulls: that takes minutes, and a registry may be out of reach.
	if err := ensureImage(ctx, pool, o.Image, kind == BackendDocker, os.Stderr); err != nil {
		closeIdle(pool)
		if kind == BackendDocker {
			return nil, "", "", err
		}
		return local(fmt.Sprintf("auto: a Docker engine answers but %v (make docker-image builds %s)", err, DefaultImage))
	}
	return newDocker(ctx, o, pool, ports), BackendDocker, "", nil
}

// localOnly names an option that only the local backend honours, or returns "".
func localOnly(o Options) string {
	switch {
	case o.TLS:
		return "TLS"
	case o.DataDir != "":
		return "DataDir"
	case o.BinDir != "":
		return "BinDir"
	}
	return ""
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
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
