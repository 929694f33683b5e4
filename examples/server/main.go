// Command server is pgshard's reference HTTP server: users and their posts
// over sharded PostgreSQL, with replica reads, a coherent cache,
// read-your-writes tokens, a recent feed gathered from every shard,
// Prometheus metrics and a live shard dashboard.
//
// With no flags it starts a dev cluster (2 shards x 1 replica) and serves on
// 127.0.0.1:8080:
//
//	go run ./examples/server
//	go run ./examples/server -config topology.yaml   # existing servers
//
// Run it with -h for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/router"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	listen, config, data, writeTopology, logLevel string
	shards, replicas                              int
	nodeID                                        int64
	rate                                          float64
	burst                                         int
	requestTimeout, shutdownTimeout               time.Duration
	readHeaderTimeout                             time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "`address` to serve HTTP on")
	fs.StringVar(&f.config, "config", "", "YAML topology `file` of existing servers; without it, a dev cluster is started")
	fs.StringVar(&f.data, "data", "", "dev cluster: keep its data in this empty `folder` (default: a temporary one, removed on exit)")
	fs.IntVar(&f.shards, "shards", 2, "dev cluster: number of shards")
	fs.IntVar(&f.replicas, "replicas", 1, "dev cluster: streaming replicas per shard")
	fs.StringVar(&f.writeTopology, "write-topology", "", "write the running topology to this `file`, for a second instance's -config")
	fs.Int64Var(&f.nodeID, "node-id", -1, "Snowflake node ID of this instance, 0 to 1023 (default: random)")
	fs.Float64Var(&f.rate, "rate", 0, "per-client-IP request rate limit, requests a second (0: no limit)")
	fs.IntVar(&f.burst, "burst", 0, "per-client-IP burst (default: max(1, -rate))")
	fs.DurationVar(&f.requestTimeout, "request-timeout", 5*time.Second, "bound on each request's database work")
	fs.DurationVar(&f.readHeaderTimeout, "read-header-timeout", 5*time.Second, "how long a client may take to send a request's headers; a slower one is cut off")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may take to finish on SIGINT or SIGTERM")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: server [flags]\n\npgshard's reference server. With no -config, it starts a dev cluster of local PostgreSQL servers.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if f.config != "" && (f.data != "" || isSet(fs, "shards") || isSet(fs, "replicas")) {
		return nil, errors.New("-data, -shards and -replicas size a dev cluster: they do not go with -config")
	}
	if f.readHeaderTimeout <= 0 {
		return nil, fmt.Errorf("-read-header-timeout %s: want a positive duration", f.readHeaderTimeout)
	}
	if f.nodeID > maxNode {
		return nil, fmt.Errorf("-node-id %d: want 0 to %d", f.nodeID, maxNode)
	}
	return f, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func run(args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // from now on, a second Ctrl-C kills at once
	}()
	if err := serve(ctx, f, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 1
	}
	return 0
}

// serve runs the server until ctx ends (SIGINT or SIGTERM), then lets
// in-flight requests finish, closes the router and stops the dev cluster.
func serve(ctx context.Context, f *flags, stdout, stderr io.Writer) error {

	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: want debug, info, warn or error", f.logLevel)
	}
	// Listen first: a busy port fails before a dev cluster starts.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	defer ln.Close()

	var (
		topo    *topology
		cluster *pgcluster.Cluster
	)
	if f.config != "" {
		if topo, err = loadTopology(f.config); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "starting a dev cluster: %d shard(s) x (1 primary + %d replica(s))...\n", f.shards, f.replicas)
		if cluster, topo, err = startDevCluster(ctx, f.shards, f.replicas, f.data); err != nil {
			return err
		}
		defer func() {
			if err := cluster.Close(); err != nil {
				fmt.Fprintln(stderr, "server: stop the dev cluster:", err)
			}
		}()
	}
	red := newRedactor(topo)
	log := slog.New(redactHandler{next: slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}), r: red})

	if f.writeTopology != "" {
		if err := writeTopology(f.writeTopology, topo); err != nil {
			return fmt.Errorf("-write-topology: %w", err)
		}
	}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	r, err := router.Open(openCtx, routerConfig(topo, log))
	cancel()
	if err != nil {
		return errors.New(red.String(err.Error()))
	}
	defer r.Close()

	srv, err := newServer(ctx, r, serverOptions{
		NodeID: f.nodeID, Rate: f.rate, Burst: f.burst, RequestTimeout: f.requestTimeout,
		Cache: topo.Cache, Logger: log, Redactor: red, Instance: ln.Addr().String(), MaxLag: maxLag(topo),
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	hs := newHTTPServer(srv, f, log)
	banner(stdout, ln.Addr().String(), srv, topo, cluster, f)

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "shutting down: finishing in-flight requests...")
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// routerConfig turns a topology into the router's configuration.
func routerConfig(t *topology, log *slog.Logger) router.Config {
	cfg := router.Config{Replica: t.Replica, Channel: t.Channel, Logger: log, Cache: cache.Options{}}
	if n := t.MaxConns; n > 0 {
		cfg.Replica.ConfigurePool = func(c *pgxpool.Config) { c.MaxConns = n }
	}
	for _, s := range t.Shards {
		cfg.Shards = append(cfg.Shards, router.ShardConfig{Name: s.Name, Range: s.Range, Primary: s.Primary, Replicas: s.Replicas})
	}
	return cfg
}

func maxLag(t *topology) time.Duration {
	if t.Replica.MaxLag > 0 {
		return t.Replica.MaxLag
	}
	return time.Second
}

// banner tells a newcomer where everything is, in a few lines.
func banner(w io.Writer, addr string, srv *server, t *topology, c *pgcluster.Cluster, f *flags) {
	base := "http://" + addr
	fmt.Fprintf(w, "\npgshard example server on %s\n", base)
	fmt.Fprintf(w, "  API        %s/users  (POST {\"name\"}; GET/PUT /users/{id}; /users/{id}/posts; /posts/recent)\n", base)
	fmt.Fprintf(w, "  dashboard  %s/debug/shards\n", base)
	fmt.Fprintf(w, "  metrics    %s/metrics   health %s/healthz   ready %s/readyz\n", base, base, base)
	if c != nil {
		where := "a temporary folder, removed on exit"
		if f.data != "" {
			where = f.data + " (kept)"
		}
		fmt.Fprintf(w, "  topology   dev cluster, %v; data in %s\n", c, where)
	} else {
		fmt.Fprintf(w, "  topology   %s\n", f.config)
	}
	st := srv.r.Stats()
	for _, sh := range st.Shards {
		fmt.Fprintf(w, "    %-8s %-6s", sh.Name, sh.Range)
		for _, n := range sh.Replica.Nodes {
			fmt.Fprintf(w, "  %s %s", n.Role, srv.red.String(n.Addr))
		}
		fmt.Fprintln(w)
	}
	if f.writeTopology != "" {
		fmt.Fprintf(w, "  joined by  go run ./examples/server -config %s -listen 127.0.0.1:8081\n", f.writeTopology)
	}
	rate := "off (-rate N to limit each client IP)"
	if f.rate > 0 {
		rate = fmt.Sprintf("%g requests/s per client IP", f.rate)
	}
	fmt.Fprintf(w, "  rate limit %s; Snowflake node %d\n", rate, srv.ids.node)
	fmt.Fprintf(w, "  try        curl -si -XPOST %s/users -d '{\"name\":\"Ada\"}'\n", base)
	fmt.Fprintf(w, "Ctrl-C stops the server%s.\n\n", map[bool]string{true: " and the dev cluster", false: ""}[c != nil])
}
