package pgcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

// dockerBackend runs one container per node, with host networking: each server listens
// on a port of 127.0.0.1 of its own, and replicas stream from 127.0.0.1 too, so no packet
// leaves loopback and no bridge network is made. The container's script runs initdb or
// pg_basebackup and then postgres itself, as the image's user postgres, so any image
// with the server binaries on PATH or under /usr/lib/postgresql/*/bin works: the
// official postgres:15 and the registry-free pgshard/postgres:15 (see EnsureImage). It
// is safe for concurrent use.
type dockerBackend struct {
	opts   Options
	ports  *portPicker
	pool   *dockertest.Pool
	prefix string // of every name this backend gives
	image  string
}

// Labels that every container of pgcluster carries, so that the next Start removes the
// containers of a test process that died without closing its cluster.
const (
	labelCluster = "pgshard.cluster"
	labelPID     = "pgshard.pid"
	labelHost    = "pgshard.host"
)

// pingDocker returns a pool when a Docker engine ($DOCKER_HOST, else the default
// socket) answers within a second.
func pingDocker(ctx context.Context) (*dockertest.Pool, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := pool.Client.PingWithContext(ctx); err != nil {
		closeIdle(pool)
		return nil, err
	}
	return pool, nil
}

// closeIdle closes the pool's idle HTTP connections, whose goroutines would outlive it.
func closeIdle(pool *dockertest.Pool) {
	if hc := pool.Client.HTTPClient; hc != nil {
		hc.CloseIdleConnections()
	}
}

func newDocker(ctx context.Context, o Options, pool *dockertest.Pool, ports *portPicker) *dockerBackend {
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	b := &dockerBackend{opts: o, ports: ports, pool: pool, image: o.Image,
		prefix: fmt.Sprintf("pgshard-%d-%x", os.Getpid(), nonce)}
	_, _ = sweepContainers(ctx, pool)
	return b
}

func (b *dockerBackend) describe() string { return "docker " + b.image }

func (b *dockerBackend) caFile() string { return "" }

// The containers' scripts, for sh, run as the image's user postgres. Stop and Start
// restart the same container, whose data stays: initdb and pg_basebackup run on its
// first start only.
const (
	scriptFindBin = `set -e
bin=
if command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
	bin=$(dirname "$(command -v postgres)")
else
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5nr); do
		if [ -x "$d/postgres" ]; then bin=$d; break; fi
	done
fi
if [ -z "$bin" ]; then
	echo "pgcluster: this image has no postgres on PATH or under /usr/lib/postgresql/*/bin" >&2
	exit 1
fi
PATH="$bin:$PATH"
mkdir -p "$(dirname "$PGDATA")"
`
	scriptRun = `printf '%s\n' "$PGSHARD_CONF" > "$PGDATA/pgshard.conf"
exec postgres -D "$PGDATA"
`
	primaryScript = scriptFindBin + `if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pw=$(mktemp)
	printf '%s\n' "$PGSHARD_PASSWORD" > "$pw"
	initdb -D "$PGDATA" -U postgres --pwfile="$pw" --auth=trust -E UTF8 --locale=C --no-sync --no-instructions
	rm -f "$pw"
	printf '%s\n' "$PGSHARD_HBA" > "$PGDATA/pg_hba.conf"
	printf "\ninclude_if_exists = 'pgshard.conf'\n" >> "$PGDATA/postgresql.conf"
fi
` + scriptRun

	// -R writes primary_conninfo and standby.signal; -C -S makes a slot, so that the
	// primary keeps the WAL that a stopped or paused replica has not received yet.
	replicaScript = scriptFindBin + `if [ ! -s "$PGDATA/PG_VERSION" ]; then
	PGPASSWORD="$PGSHARD_PASSWORD" pg_basebackup -h 127.0.0.1 -p "$PGSHARD_PRIMARY_PORT" -U postgres \
		-D "$PGDATA" -R -X stream -c fast -C -S "$PGSHARD_SLOT" --no-sync
fi
` + scriptRun

	// containerData is PGDATA in every container: a folder of the container's own
	// file system (not a volume), so that it lives as long as the container.
	containerData = "/tmp/pgshard/data"
)

func (b *dockerBackend) startPrimary(ctx context.Context, name string) (server, error) {
	s, err := b.launch(ctx, name, primaryScript, superuser, "PGSHARD_HBA="+hbaConf)
	if err != nil {
		return nil, err
	}
	stmts := roleSQL(b.opts)
	if b.opts.Database != superuser {
		owner := b.opts.User
		stmts = append(stmts, "CREATE DATABASE "+quoteIdent(b.opts.Database)+" OWNER "+quoteIdent(owner))
	}
	if err := execAll(ctx, dsn(superuser, b.opts.Password, s.portN, superuser), stmts...); err != nil {
		_ = s.close(context.WithoutCancel(ctx))
		return nil, &NodeError{Node: name, Op: "set up", Err: err}
	}
	return s, nil
}

func (b *dockerBackend) startReplica(ctx context.Context, name, slot string, primary server) (server, error) {
	return b.launch(ctx, name, replicaScript, b.opts.Database,
		"PGSHARD_PRIMARY_PORT="+strconv.Itoa(primary.port()), "PGSHARD_SLOT="+slot)
}

// launch runs a node's container on a new port and waits until the server accepts
// connections to database db; it tries again on another port if someone else took
// that one meanwhile.
func (b *dockerBackend) launch(ctx context.Context, name, script, db string, env ...string) (*dockerServer, error) {
	for try := 1; ; try++ {
		port, err := b.ports.pick()
		if err != nil {
			return nil, err
		}
		s := &dockerServer{b: b, name: name, portN: port}
		settings := append([]setting{
			{"listen_addresses", "127.0.0.1"},
			{"port", strconv.Itoa(port)},
			{"unix_socket_directories", "/tmp"},
			{"cluster_name", name},
		}, clusterSettings(b.opts)...)
		repo, tag := splitImage(b.image)
		s.res, err = b.pool.RunWithOptions(&dockertest.RunOptions{
			Name:       s.container(),
			Repository: repo,
			Tag:        tag,
			User:       superuser,
			Env: append(env, "PGDATA="+containerData, "PGSHARD_PASSWORD="+b.opts.Password,
				"PGSHARD_CONF="+string(renderConf(settings))),
			Entrypoint: []string{"sh", "-c", script},
			Labels: map[string]string{labelCluster: b.prefix, labelPID: strconv.Itoa(os.Getpid()),
				labelHost: hostname()},
		}, func(hc *dc.HostConfig) {
			hc.NetworkMode = "host"
			hc.PublishAllPorts = false
			hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
		})
		if err != nil {
			return nil, &NodeError{Node: name, Op: "run a container for", Err: err}
		}
		err = s.waitReady(ctx, dsn(superuser, b.opts.Password, port, db))
		if err == nil {
			return s, nil
		}
		tail := s.logTail(context.WithoutCancel(ctx), 20)
		_ = s.close(context.WithoutCancel(ctx))
		if try < 3 && strings.Contains(tail, "Address already in use") {
			continue
		}
		return nil, &NodeError{Node: name, Op: "start", Log: tail, Err: err}
	}
}

func (b *dockerBackend) close(context.Context) error {
	closeIdle(b.pool)
	return nil
}

// SweepContainers removes the containers of clusters whose process, on this machine,
// died without closing them, and returns how many it removed: nothing stops a
// container when the process that ran it dies. Start does it too.
func SweepContainers(ctx context.Context) (int, error) {
	pool, err := pingDocker(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	defer closeIdle(pool)
	return sweepContainers(ctx, pool)
}

func sweepContainers(ctx context.Context, pool *dockertest.Pool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := pool.Client.ListContainers(dc.ListContainersOptions{All: true, Context: ctx,
		Filters: map[string][]string{"label": {labelPID, labelHost + "=" + hostname()}}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range list {
		pid, err := strconv.Atoi(c.Labels[labelPID])
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		err = pool.Client.RemoveContainer(dc.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true,
			Context: ctx})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// dockerServer is one container. It is safe for concurrent use.
type dockerServer struct {
	b     *dockerBackend
	name  string
	portN int
	res   *dockertest.Resource
	mu    sync.Mutex // serialises start, stop, kill, freeze, thaw and close
	// paused: the container was paused (see freeze).
	paused bool
	closed bool // the container is removed
}

func (s *dockerServer) container() string { return s.b.prefix + "-" + s.name }
func (s *dockerServer) port() int         { return s.portN }
func (s *dockerServer) pid() int          { return 0 }

func (s *dockerServer) superDSN() string {
	return dsn(superuser, s.b.opts.Password, s.portN, s.b.opts.Database)
}

// waitReady waits until the server behind dsn accepts connections, and gives up early
// when the container exits.
func (s *dockerServer) waitReady(ctx context.Context, dsn string) error {
	wctx, cancel := context.WithCancel(ctx)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_, _ = s.b.pool.Client.WaitContainerWithContext(s.res.Container.ID, wctx)
	}()
	err := waitReady(ctx, dsn, exited)
	cancel()
	<-exited
	return err
}

func (s *dockerServer) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	err := s.b.pool.Client.StartContainerWithContext(s.res.Container.ID, nil, ctx)
	var running *dc.ContainerAlreadyRunning
	if err != nil && !errors.As(err, &running) {
		return err
	}
	return s.waitReady(ctx, s.superDSN())
}

// stop sends SIGINT, PostgreSQL's fast shutdown, to the postmaster, the container's
// first process: dockertest replaces the image's stop signal.
func (s *dockerServer) stop(ctx context.Context) error { return s.signal(ctx, dc.SIGINT) }

// kill sends SIGKILL to the postmaster; the kernel kills the rest of the container's
// processes with it, as the first process of their PID namespace.
func (s *dockerServer) kill(ctx context.Context) error { return s.signal(ctx, dc.SIGKILL) }

func (s *dockerServer) signal(ctx context.Context, sig dc.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if err := s.unpauseLocked(ctx); err != nil { // the engine signals no paused container
		return err
	}
	id := s.res.Container.ID
	err := s.b.pool.Client.KillContainer(dc.KillContainerOptions{ID: id, Signal: sig, Context: ctx})
	var notRunning *dc.ContainerNotRunning
	if errors.As(err, &notRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = s.b.pool.Client.WaitContainerWithContext(id, ctx)
	return err
}

// close removes the container, killing it, and its data with it.
func (s *dockerServer) close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	_ = s.unpauseLocked(ctx)
	return s.b.pool.Client.RemoveContainer(dc.RemoveContainerOptions{ID: s.res.Container.ID, Force: true,
		RemoveVolumes: true, Context: ctx})
}

// freeze pauses the container: the cgroup freezer stops every process in it.
func (s *dockerServer) freeze(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.paused {
		return nil
	}
	c, err := s.b.pool.Client.InspectContainerWithContext(s.res.Container.ID, ctx)
	if err != nil {
		return err
	}
	if !c.State.Running {
		return errNotRunning
	}
	if err := s.b.pool.Client.PauseContainer(s.res.Container.ID); err != nil {
		return err
	}
	s.paused = true
	return nil
}

func (s *dockerServer) thaw(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unpauseLocked(ctx)
}

func (s *dockerServer) unpauseLocked(context.Context) error {
	if !s.paused {
		return nil
	}
	if err := s.b.pool.Client.UnpauseContainer(s.res.Container.ID); err != nil {
		return err
	}
	s.paused = false
	return nil
}

func (s *dockerServer) frozen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

func (s *dockerServer) logTail(ctx context.Context, lines int) string {
	var buf bytes.Buffer
	_ = s.b.pool.Client.Logs(dc.LogsOptions{
		Context: ctx, Container: s.res.Container.ID, OutputStream: &buf, ErrorStream: &buf,
		Tail: strconv.Itoa(lines), Stdout: true, Stderr: true,
	})
	return buf.String()
}
