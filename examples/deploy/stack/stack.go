package stack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	"github.com/pgshard/pgshard/examples/server/app"
	"github.com/pgshard/pgshard/internal/pgcluster"
)

// Images the stack runs besides pgcluster's PostgreSQL image.
const (
	// ToolsImage holds HAProxy and Prometheus, from Debian's packages.
	ToolsImage = "pgshard/deploy-tools:bookworm"
	// ServerImage holds the reference server's binary alone; Up builds it afresh.
	ServerImage = "pgshard/server:dev"
)

// labelDeploy marks every container the stack makes besides pgcluster's; its value is
// the PID of the process that made it.
const labelDeploy = "pgshard.deploy"

// Options sizes a Stack. Zero values take the defaults in brackets.
type Options struct {
	Instances int // reference-server instances behind HAProxy [3]
	Shards    int // [2]
	Replicas  int // streaming replicas per shard [2]
	// CheckInterval is HAProxy's health check interval (GET /readyz) [500ms].
	CheckInterval time.Duration
	// ServerArgs are extra flags for every instance.
	ServerArgs []string
	// Log receives progress lines and image builds' output; nil means none.
	Log io.Writer
}

// Stack is a running deployment. It is safe for concurrent use.
type Stack struct {
	Cluster    *pgcluster.Cluster
	Instances  []*Instance
	HAProxy    int // port of HAProxy's front end
	Stats      int // port of HAProxy's statistics page
	Prometheus int // port of Prometheus

	opts Options
	pool *dockertest.Pool
	dir  string // the configuration files, mounted read-only into the containers
	name string // prefix of the containers' names

	mu         sync.Mutex
	containers []*dockertest.Resource
}

// Instance is one reference-server instance.
type Instance struct {
	Name string // "app1", "app2", ...
	Port int
	res  *dockertest.Resource
}

// URL returns the instance's base URL.
func (i *Instance) URL() string { return "http://127.0.0.1:" + strconv.Itoa(i.Port) }

// URL returns HAProxy's front end.
func (s *Stack) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.HAProxy) }

// Up builds the images that are missing and starts the stack: the shards first, then
// the instances, HAProxy and Prometheus. It returns once HAProxy sees every instance up.
func Up(ctx context.Context, o Options) (s *Stack, err error) {
	o = o.withDefaults()
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	if err := pgcluster.EnsureImage(ctx, pgcluster.DefaultImage, o.Log); err != nil {
		return nil, err
	}
	if err := pgcluster.EnsureDebianImage(ctx, ToolsImage, []string{"haproxy", "prometheus", "ca-certificates"}, o.Log); err != nil {
		return nil, err
	}
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, err
	}
	if err := pool.Client.Ping(); err != nil {
		return nil, fmt.Errorf("%w: %v", pgcluster.ErrNoDocker, err)
	}
	dir, err := os.MkdirTemp("", "pgshard-deploy-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s = &Stack{opts: o, pool: pool, dir: dir, name: fmt.Sprintf("pgshard-deploy-%d", os.Getpid())}
	defer func() {
		if err != nil {
			_ = s.Close()
			s = nil
		}
	}()
	logf("building %s from the server's source...", ServerImage)
	if err := buildServerImage(ctx, pool, dir); err != nil {
		return s, fmt.Errorf("build %s: %w", ServerImage, err)
	}

	logf("starting %d shards x (1 primary + %d replicas)...", o.Shards, o.Replicas)
	s.Cluster, err = pgcluster.Start(ctx, pgcluster.Options{Backend: pgcluster.BackendDocker, Shards: o.Shards,
		Replicas: o.Replicas, Password: "deploy-" + rand.Text()[:16], Settings: map[string]string{"max_connections": "200"}})
	if err != nil {
		return s, err
	}
	topo := app.DevTopology(s.Cluster)
	if err := app.WriteTopology(filepath.Join(dir, "topology.yaml"), topo); err != nil {
		return s, err
	}
	if err := os.Chmod(filepath.Join(dir, "topology.yaml"), 0o644); err != nil {
		return s, err
	}

	ports, err := freePorts(o.Instances + 3)
	if err != nil {
		return s, err
	}
	for i := range o.Instances {
		s.Instances = append(s.Instances, &Instance{Name: "app" + strconv.Itoa(i+1), Port: ports[i]})
	}
	s.HAProxy, s.Stats, s.Prometheus = ports[o.Instances], ports[o.Instances+1], ports[o.Instances+2]
	if err := s.writeConfigs(); err != nil {
		return s, err
	}

	logf("starting %d server instances...", o.Instances)
	for i, in := range s.Instances {
		args := append([]string{"/server", "-listen", "127.0.0.1:" + strconv.Itoa(in.Port),
			"-config", "/etc/pgshard/topology.yaml", "-node-id", strconv.Itoa(i + 1),
			// Every connection comes from HAProxy: believe its X-Forwarded-For, and
			// cap connections per address at HAProxy's own maxconn only.
			"-trusted-proxies", "127.0.0.1/32", "-max-conns-per-ip", "0"}, o.ServerArgs...)
		if in.res, err = s.run(in.Name, ServerImage, args); err != nil {
			return s, err
		}
	}
	for _, in := range s.Instances {
		if err := waitHTTP(ctx, in.URL()+"/readyz", 2*time.Minute); err != nil {
			return s, fmt.Errorf("%s: %w\n%s", in.Name, err, s.logs(in.res, 20))
		}
	}
	logf("starting HAProxy and Prometheus...")
	hap, err := s.run("haproxy", ToolsImage, []string{"/usr/sbin/haproxy", "-db", "-f", "/etc/pgshard/haproxy.cfg"})
	if err != nil {
		return s, err
	}
	prom, err := s.run("prometheus", ToolsImage, []string{"/usr/bin/prometheus",
		"--config.file=/etc/pgshard/prometheus.yml", "--storage.tsdb.path=/tmp/prometheus",
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(s.Prometheus)})
	if err != nil {
		return s, err
	}
	for _, in := range s.Instances {
		if err := s.waitBackend(ctx, in.Name, "UP", 2*time.Minute); err != nil {
			return s, fmt.Errorf("HAProxy: %w\n%s", err, s.logs(hap, 20))
		}
	}
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/-/ready", s.Prometheus), 2*time.Minute); err != nil {
		return s, fmt.Errorf("prometheus: %w\n%s", err, s.logs(prom, 20))
	}
	return s, nil
}

func (o Options) withDefaults() Options {
	if o.Instances <= 0 {
		o.Instances = 3
	}
	if o.Shards <= 0 {
		o.Shards = 2
	}
	if o.Replicas <= 0 {
		o.Replicas = 2
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = 500 * time.Millisecond
	}
	return o
}

// run starts a container of image with host networking and the configuration folder
// mounted at /etc/pgshard.
func (s *Stack) run(name, image string, cmd []string) (*dockertest.Resource, error) {
	repo, tag, _ := strings.Cut(image, ":")
	res, err := s.pool.RunWithOptions(&dockertest.RunOptions{
		Name: s.name + "-" + name, Repository: repo, Tag: tag,
		Entrypoint: cmd[:1], Cmd: cmd[1:],
		Mounts: []string{s.dir + ":/etc/pgshard:ro"},
		Labels: map[string]string{labelDeploy: strconv.Itoa(os.Getpid())},
	}, func(hc *dc.HostConfig) {
		hc.NetworkMode = "host"
		hc.PublishAllPorts = false
		hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", name, err)
	}
	s.mu.Lock()
	s.containers = append(s.containers, res)
	s.mu.Unlock()
	return res, nil
}

// KillInstance crashes instance i: SIGKILL, as a machine that dies.
func (s *Stack) KillInstance(ctx context.Context, i int) error {
	return s.pool.Client.KillContainer(dc.KillContainerOptions{ID: s.Instances[i].res.Container.ID,
		Signal: dc.SIGKILL, Context: ctx})
}

// StartInstance starts instance i again, and waits until it is ready.
func (s *Stack) StartInstance(ctx context.Context, i int) error {
	in := s.Instances[i]
	if err := s.pool.Client.StartContainerWithContext(in.res.Container.ID, nil, ctx); err != nil {
		return err
	}
	return waitHTTP(ctx, in.URL()+"/readyz", 2*time.Minute)
}

// CPU returns the CPU time each container has used so far, by name: the instances
// ("app1"...), "haproxy", "prometheus", and the PostgreSQL nodes ("shard0-primary"...).
func (s *Stack) CPU(ctx context.Context) (map[string]time.Duration, error) {
	list, err := s.pool.Client.ListContainers(dc.ListContainersOptions{Context: ctx})
	if err != nil {
		return nil, err
	}
	out := map[string]time.Duration{}
	for _, c := range list {
		if len(c.Names) == 0 {
			continue
		}
		name := strings.TrimPrefix(c.Names[0], "/")
		short := ""
		if rest, ok := strings.CutPrefix(name, s.name+"-"); ok {
			short = rest
		} else if i := strings.Index(name, "-shard"); i >= 0 && strings.HasPrefix(name, "pgshard-"+strconv.Itoa(os.Getpid())+"-") {
			short = name[i+1:]
		}
		if short == "" {
			continue
		}
		stats := make(chan *dc.Stats, 2) // one sample, as Stream is false
		err := s.pool.Client.Stats(dc.StatsOptions{ID: c.ID, Stats: stats, Stream: false,
			Context: ctx, Timeout: 30 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("stats of %s: %w", name, err)
		}
		if st, ok := <-stats; ok && st != nil {
			out[short] = time.Duration(st.CPUStats.CPUUsage.TotalUsage)
		}
	}
	return out, nil
}

// Close removes every container of the stack and the shards, and its files.
func (s *Stack) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	s.mu.Lock()
	containers := s.containers
	s.containers = nil
	s.mu.Unlock()
	for _, res := range containers {
		err := s.pool.Client.RemoveContainer(dc.RemoveContainerOptions{ID: res.Container.ID, Force: true,
			RemoveVolumes: true, Context: ctx})
		var missing *dc.NoSuchContainer
		if err != nil && !errors.As(err, &missing) {
			errs = append(errs, err)
		}
	}
	if s.Cluster != nil {
		errs = append(errs, s.Cluster.Close())
	}
	errs = append(errs, os.RemoveAll(s.dir))
	return errors.Join(errs...)
}

// Down removes the containers of stacks, and of pgcluster's clusters, whose process is
// gone: what a launcher that was killed left behind. It returns how many it removed.
func Down(ctx context.Context) (int, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return 0, err
	}
	list, err := pool.Client.ListContainers(dc.ListContainersOptions{All: true, Context: ctx,
		Filters: map[string][]string{"label": {labelDeploy}}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range list {
		pid, err := strconv.Atoi(c.Labels[labelDeploy])
		if err == nil && pid != os.Getpid() && processAlive(pid) {
			continue
		}
		if err := pool.Client.RemoveContainer(dc.RemoveContainerOptions{ID: c.ID, Force: true,
			RemoveVolumes: true, Context: ctx}); err != nil {
			return n, err
		}
		n++
	}
	m, err := pgcluster.SweepContainers(ctx)
	return n + m, err
}

func (s *Stack) logs(res *dockertest.Resource, lines int) string {
	var b strings.Builder
	_ = s.pool.Client.Logs(dc.LogsOptions{Container: res.Container.ID, OutputStream: &b, ErrorStream: &b,
		Stdout: true, Stderr: true, Tail: strconv.Itoa(lines)})
	return b.String()
}

// freePorts returns n distinct free ports of 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until it answers 200, for at most d.
func waitHTTP(ctx context.Context, url string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v", url, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
