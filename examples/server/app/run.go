package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/topology"
)

// Run serves the configured server until ctx ends (as on SIGINT or
// SIGTERM), then lets in-flight requests finish, closes the router and
// stops the dev cluster, if it started one. It writes a banner to stdout
// and its log to stderr.
func Run(ctx context.Context, f Config, stdout, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(f.LogLevel)); err != nil {
		return fmt.Errorf("-log-level %q: want debug, info, warn or error", f.LogLevel)
	}
	// Listen first: a busy port fails before a dev cluster starts.
	raw, err := net.Listen("tcp", f.Listen)
	if err != nil {
		return err
	}
	ln := connLimits(raw, f.MaxConnsPerIP, f.MaxConns)
	defer ln.Close()

	var (
		topo    *Topology
		cluster *pgcluster.Cluster
		store   *topology.Store
		lookup  = os.LookupEnv
		control string // the store's DSN, its password a variable
	)
	switch {
	case f.Control != "":
		if store, err = topology.Open(ctx, f.Control); err != nil {
			return fmt.Errorf("-control: %w", err)
		}
		defer store.Close()
		topo, control = controlTopology(), f.Control
	case f.TopologyFile != "":
		if topo, err = LoadTopology(f.TopologyFile); err != nil {
			return err
		}
	default:
		fmt.Fprintf(stdout, "starting a dev cluster: %d shard(s) x (1 primary + %d replica(s))...\n", f.Shards, f.Replicas)
		if cluster, topo, err = StartDevCluster(ctx, f.Shards, f.Replicas, f.DataDir); err != nil {
			return err
		}
		defer func() {
			if err := cluster.Close(); err != nil {
				fmt.Fprintln(stderr, "server: stop the dev cluster:", err)
			}
		}()
		if store, control, lookup, err = devStore(ctx, topo); err != nil {
			return err
		}
		defer store.Close()
	}
	var rcfg router.Config
	if store != nil {
		var err error
		if rcfg, topo, err = followStore(ctx, store, topo, lookup, nil); err != nil {
			return fmt.Errorf("topology store: %w", err)
		}
	}
	red := NewRedactor(topo)
	log := slog.New(redactHandler{next: slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}), r: red})

	if f.WriteTopology != "" {
		if err := WriteTopology(f.WriteTopology, topo); err != nil {
			return fmt.Errorf("-write-topology: %w", err)
		}
	}
	if store == nil {
		rcfg = topo.RouterConfig(log)
	}
	rcfg.Logger = log
	tracer := NewTracer(red)
	rcfg.Tracer = tracer
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	r, err := router.Open(openCtx, rcfg)
	cancel()
	if err != nil {
		return errors.New(red.String(err.Error()))
	}
	defer r.Close()

	srv, err := New(ctx, r, Options{
		NodeID: f.NodeID, Rate: f.Rate, Burst: f.Burst, TrustedProxies: f.TrustedProxies, RequestTimeout: f.RequestTimeout,
		Cache: topo.Cache, Logger: log, Redactor: red, Instance: ln.Addr().String(), MaxLag: topo.MaxLag(),
		Tracer: tracer, Store: store, StoreLookup: lookup,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	srv.Registry().MustRegister(ln.collectors()...)
	hs := newHTTPServer(srv, f, log)
	banner(stdout, ln.Addr().String(), srv, topo, cluster, f, control)

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "shutting down: finishing in-flight requests...")
	sctx, cancel := context.WithTimeout(context.Background(), f.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// RouterConfig is the router's configuration for t, logging to log (nil:
// silent). A caller may change it before router.Open, for instance to set
// a Tracer or to configure the pools further.
func (t *Topology) RouterConfig(log *slog.Logger) router.Config {
	cfg := router.Config{Replica: t.Replica, Channel: t.Channel, Logger: log, Cache: cache.Options{}}
	if n := t.MaxConns; n > 0 {
		cfg.Replica.ConfigurePool = func(_ replica.PoolInfo, c *pgxpool.Config) { c.MaxConns = n }
	}
	for _, s := range t.Shards {
		cfg.Shards = append(cfg.Shards, router.ShardConfig{Name: s.Name, Range: s.Range, Primary: s.Primary, Replicas: s.Replicas})
	}
	return cfg
}

// MaxLag is the replica lag bound the router keeps for t: its
// Replica.MaxLag, or the replica package's default of 1 s.
func (t *Topology) MaxLag() time.Duration {
	if t.Replica.MaxLag > 0 {
		return t.Replica.MaxLag
	}
	return time.Second
}

// banner tells a newcomer where everything is, in a few lines.
func banner(w io.Writer, addr string, srv *Server, t *Topology, c *pgcluster.Cluster, f Config, control string) {
	base := "http://" + addr
	fmt.Fprintf(w, "\npgshard example server on %s\n", base)
	fmt.Fprintf(w, "  API        %s/users  (POST {\"name\", \"email\"}; GET/PUT /users/{id}; PUT/DELETE /users/{id}/email; GET /users?email=; /users/{id}/posts; /posts/recent)\n", base)
	fmt.Fprintf(w, "  dashboard  %s/debug/shards\n", base)
	fmt.Fprintf(w, "  metrics    %s/metrics   health %s/healthz   ready %s/readyz\n", base, base, base)
	if c != nil {
		where := "a temporary folder, removed on exit"
		if f.DataDir != "" {
			where = f.DataDir + " (kept)"
		}
		fmt.Fprintf(w, "  topology   dev cluster, %v; data in %s\n", c, where)
	} else if f.TopologyFile != "" {
		fmt.Fprintf(w, "  topology   %s\n", f.TopologyFile)
	}
	if control != "" {
		fmt.Fprintf(w, "  map        version %d from the topology store at %s\n", srv.r.Stats().Map.Version, srv.red.String(control))
	}
	st := srv.r.Stats()
	for _, sh := range st.Shards {
		fmt.Fprintf(w, "    %-8s %-6s", sh.Name, sh.Range)
		for _, n := range sh.Replica.Nodes {
			fmt.Fprintf(w, "  %s %s", n.Role, srv.red.String(n.Addr))
		}
		fmt.Fprintln(w)
	}
	if f.WriteTopology != "" {
		fmt.Fprintf(w, "  joined by  go run ./examples/server -config %s -listen 127.0.0.1:8081\n", f.WriteTopology)
	}
	if c != nil && control != "" && f.DataDir != "" {
		// The store names the password as a variable; the kept folder has it.
		fmt.Fprintf(w, "  joined by  %s=$(cat %s) go run ./examples/server -control '%s' -listen 127.0.0.1:8082\n",
			DevPasswordVar, filepath.Join(f.DataDir, passwordFile), control)
	}
	rate := "off (-rate N to limit each client IP)"
	if f.Rate > 0 {
		rate = fmt.Sprintf("%g requests/s per client IP", f.Rate)
	}
	fmt.Fprintf(w, "  rate limit %s; Snowflake node %d\n", rate, srv.ids.Node())
	fmt.Fprintf(w, "  try        curl -si -XPOST %s/users -d '{\"name\":\"Ada\"}'\n", base)
	fmt.Fprintf(w, "Ctrl-C stops the server%s.\n\n", map[bool]string{true: " and the dev cluster", false: ""}[c != nil])
}
