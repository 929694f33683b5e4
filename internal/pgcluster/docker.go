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

// dockerBackend runs one container of the postgres image per node, on a network of its
// own so that replicas reach their primary by container name. Ports are published on
// 127.0.0.1 only. It is safe for concurrent use.
type dockerBackend struct {
	opts      Options
	ports     *portPicker
	pool      *dockertest.Pool
	network   *dockertest.Network
	prefix    string // of every name this backend gives
	repo, tag string
}

// pingDocker returns a pool when a Docker engine answers within a second.
func pingDocker(ctx context.Context) (*dockertest.Pool, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := pool.Client.PingWithContext(ctx); err != nil {
		return nil, err
	}
	return pool, nil
}

func newDocker(o Options, pool *dockertest.Pool, ports *portPicker) (*dockerBackend, error) {
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	b := &dockerBackend{opts: o, ports: ports, pool: pool, prefix: fmt.Sprintf("pgshard-%d-%x", os.Getpid(), nonce)}
	b.repo, b.tag = o.Image, "latest"
	if i := strings.LastIndex(o.Image, ":"); i > strings.LastIndex(o.Image, "/") {
		b.repo, b.tag = o.Image[:i], o.Image[i+1:]
	}
	var err error
	if b.network, err = pool.CreateNetwork(b.prefix); err != nil {
		return nil, fmt.Errorf("pgcluster: docker network: %w", err)
	}
	return b, nil
}

func (b *dockerBackend) describe() string { return "docker " + b.opts.Image }

func (b *dockerBackend) caFile() string { return "" }

// The entrypoint scripts lean on the image's docker-entrypoint.sh. The primary's adds the
// cluster's settings and pg_hba.conf once initdb has run; a replica's clones its primary
// on first start only, since Stop and Start restart the same container.
const (
	primaryScript = `set -e
mkdir -p /docker-entrypoint-initdb.d
cat > /docker-entrypoint-initdb.d/pgshard.sh <<'END'
printf '%s\n' "$PGSHARD_CONF" >> "$PGDATA/postgresql.conf"
printf '%s\n' "$PGSHARD_HBA" > "$PGDATA/pg_hba.conf"
END
exec docker-entrypoint.sh postgres -c cluster_name="$PGSHARD_NAME"`

	replicaScript = `set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
	PGPASSWORD="$POSTGRES_PASSWORD" gosu postgres pg_basebackup -h "$PGSHARD_PRIMARY" -U postgres \
		-D "$PGDATA" -R -X stream -c fast -C -S "$PGSHARD_SLOT"
fi
exec docker-entrypoint.sh postgres -c cluster_name="$PGSHARD_NAME"`

	dockerHBA = `local all all trust
host all all all scram-sha-256
host replication all all scram-sha-256`
)

func (b *dockerBackend) startPrimary(ctx context.Context, name string) (server, error) {
	settings := append([]setting{{"listen_addresses", "*"}}, clusterSettings(b.opts)...)
	s, err := b.run(ctx, name, primaryScript,
		"PGSHARD_CONF="+string(renderConf(settings)), "PGSHARD_HBA="+dockerHBA)
	if err != nil {
		return nil, err
	}
	stmts := roleSQL(b.opts)
	if b.opts.Database != "postgres" && b.opts.User != superuser {
		stmts = append(stmts, "ALTER DATABASE "+quoteIdent(b.opts.Database)+" OWNER TO "+quoteIdent(b.opts.User))
	}
	if err := execAll(ctx, s.superDSN(), stmts...); err != nil {
		_ = s.close(ctx)
		return nil, &NodeError{Node: name, Op: "set up", Err: err}
	}
	return s, nil
}

func (b *dockerBackend) startReplica(ctx context.Context, name, slot string, primary server) (server, error) {
	p := primary.(*dockerServer)
	return b.run(ctx, name, replicaScript, "PGSHARD_PRIMARY="+p.container(), "PGSHARD_SLOT="+slot)
}

func (b *dockerBackend) run(ctx context.Context, name, script string, env ...string) (*dockerServer, error) {
	port, err := b.ports.pick()
	if err != nil {
		return nil, err
	}
	s := &dockerServer{b: b, name: name, portN: port}
	s.res, err = b.pool.RunWithOptions(&dockertest.RunOptions{
		Name:       s.container(),
		Repository: b.repo,
		Tag:        b.tag,
		Env: append(env, "POSTGRES_PASSWORD="+b.opts.Password, "POSTGRES_DB="+b.opts.Database,
			"PGSHARD_NAME="+name),
		Entrypoint:   []string{"bash", "-c", script},
		Networks:     []*dockertest.Network{b.network},
		ExposedPorts: []string{"5432/tcp"},
		PortBindings: map[dc.Port][]dc.PortBinding{
			"5432/tcp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(port)}},
		},
		Labels: map[string]string{"pgshard.cluster": b.prefix},
	}, func(hc *dc.HostConfig) {
		hc.PublishAllPorts = false
		hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return nil, &NodeError{Node: name, Op: "run a container for", Err: err}
	}
	if err := waitReady(ctx, s.superDSN(), nil); err != nil {
		log := s.logTail(context.WithoutCancel(ctx), 20)
		_ = s.close(context.WithoutCancel(ctx))
		return nil, &NodeError{Node: name, Op: "start", Log: log, Err: err}
	}
	return s, nil
}

func (b *dockerBackend) close(context.Context) error {
	err := b.pool.RemoveNetwork(b.network)
	if hc := b.pool.Client.HTTPClient; hc != nil {
		hc.CloseIdleConnections() // their goroutines would outlive Close
	}
	return err
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
}

func (s *dockerServer) container() string { return s.b.prefix + "-" + s.name }
func (s *dockerServer) port() int         { return s.portN }
func (s *dockerServer) pid() int          { return 0 }

func (s *dockerServer) superDSN() string {
	return dsn(superuser, s.b.opts.Password, s.portN, s.b.opts.Database)
}

func (s *dockerServer) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.b.pool.Client.StartContainerWithContext(s.res.Container.ID, nil, ctx)
	var running *dc.ContainerAlreadyRunning
	if err != nil && !errors.As(err, &running) {
		return err
	}
	return waitReady(ctx, s.superDSN(), nil)
}

// stop sends SIGINT, PostgreSQL's fast shutdown: dockertest replaces the image's stop
// signal, so docker stop would not shut down fast.
func (s *dockerServer) stop(ctx context.Context) error { return s.signal(ctx, dc.SIGINT) }

func (s *dockerServer) kill(ctx context.Context) error { return s.signal(ctx, dc.SIGKILL) }

func (s *dockerServer) signal(ctx context.Context, sig dc.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
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

func (s *dockerServer) close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.unpauseLocked(ctx)
	return s.b.pool.Purge(s.res)
}

// freeze pauses the container: the cgroup freezer stops every process in it.
func (s *dockerServer) freeze(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		return nil
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
