package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Config is what the server's command line sets: where to listen, which
// PostgreSQL servers to use (a topology file, or a dev cluster to start),
// and the limits and timeouts of the HTTP server. Its zero value is not
// usable; DefaultConfig, or RegisterFlags followed by flag parsing, fills it.
type Config struct {
	Listen        string // address to serve HTTP on
	TopologyFile  string // YAML topology of existing servers; "" starts a dev cluster
	Control       string // DSN of a topology store to follow instead of a file or a dev cluster
	DataDir       string // dev cluster: keep its data here; "" is a temporary folder
	Shards        int    // dev cluster: number of shards
	Replicas      int    // dev cluster: streaming replicas per shard
	WriteTopology string // write the running topology to this file, for a second instance
	NodeID        int64  // Snowflake node ID, 0 to 1023; negative leases one from PostgreSQL
	Rate          float64
	Burst         int
	// TrustedProxies: whose X-Forwarded-For the rate limit believes.
	TrustedProxies TrustedProxies
	// RequestTimeout bounds each request's database work.
	RequestTimeout time.Duration
	// ReadHeaderTimeout is how long a client may take to send its headers.
	ReadHeaderTimeout time.Duration
	// ShutdownTimeout is how long in-flight requests may take on shutdown.
	ShutdownTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration
	// MaxConns caps the open connections in total (Accept waits beyond it),
	// MaxConnsPerIP those of one client address (one more is answered 429
	// and closed). 0 is no cap.
	MaxConns, MaxConnsPerIP int
	LogLevel                string // debug, info, warn or error
}

// DefaultConfig is the configuration of the command run with no flags: a
// dev cluster of 2 shards x 1 replica served on 127.0.0.1:8080.
func DefaultConfig() Config {
	var c Config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	c.RegisterFlags(fs)
	return c
}

// RegisterFlags defines a flag for each field of c on fs, with its default.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "`address` to serve HTTP on")
	fs.StringVar(&c.TopologyFile, "config", "", "YAML topology `file` of existing servers; without it, a dev cluster is started")
	fs.StringVar(&c.Control, "control", "", "follow the topology store in this control database (`DSN`; ${VAR} names a password) instead of -config or a dev cluster")
	fs.StringVar(&c.DataDir, "data", "", "dev cluster: keep its data in this empty `folder` (default: a temporary one, removed on exit)")
	fs.IntVar(&c.Shards, "shards", 2, "dev cluster: number of shards")
	fs.IntVar(&c.Replicas, "replicas", 1, "dev cluster: streaming replicas per shard")
	fs.StringVar(&c.WriteTopology, "write-topology", "", "write the running topology to this `file`, for a second instance's -config")
	fs.Int64Var(&c.NodeID, "node-id", -1, "pin the Snowflake node ID of this instance, 0 to 1023 (default: leased from PostgreSQL)")
	fs.Float64Var(&c.Rate, "rate", 0, "per-client-IP request rate limit, requests a second (0: no limit)")
	fs.IntVar(&c.Burst, "burst", 0, "per-client-IP burst (default: max(1, -rate))")
	fs.Func("trusted-proxies", "comma-separated `CIDRs` of load balancers whose X-Forwarded-For the rate limit believes (default: none)", func(v string) error {
		t, err := ParseTrustedProxies(v)
		c.TrustedProxies = t
		return err
	})
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 5*time.Second, "bound on each request's database work")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 2*time.Second, "how long a client may take to send a request's headers; a slower one is cut off")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 30*time.Second, "how long a keep-alive connection may stay idle before it is closed")
	fs.IntVar(&c.MaxConns, "max-conns", 10_000, "cap on open client connections in total; beyond it new ones wait (0: no cap)")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 512, "cap on open connections from one client address; one more is answered 429 and closed (0: no cap; behind a load balancer, every client has its address)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may take to finish on SIGINT or SIGTERM")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
}

// ParseFlags parses the command line of the server into a Config, and
// checks it. Usage and errors are written to stderr; -h returns
// flag.ErrHelp.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: server [flags]\n\npgshard's reference server. With no -config, it starts a dev cluster of local PostgreSQL servers.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if c.TopologyFile != "" && (c.DataDir != "" || isSet(fs, "shards") || isSet(fs, "replicas")) {
		return c, errors.New("-data, -shards and -replicas size a dev cluster: they do not go with -config")
	}
	if c.Control != "" && (c.TopologyFile != "" || c.DataDir != "" || isSet(fs, "shards") || isSet(fs, "replicas")) {
		return c, errors.New("-control follows a topology store: it does not go with -config, -data, -shards or -replicas")
	}
	return c, c.check()
}

// check refuses what no flag combination makes right.
func (c *Config) check() error {
	if c.ReadHeaderTimeout <= 0 {
		return fmt.Errorf("-read-header-timeout %s: want a positive duration", c.ReadHeaderTimeout)
	}
	if c.IdleTimeout <= 0 {
		return fmt.Errorf("-idle-timeout %s: want a positive duration", c.IdleTimeout)
	}
	if c.MaxConns < 0 || c.MaxConnsPerIP < 0 {
		return fmt.Errorf("-max-conns %d, -max-conns-per-ip %d: want 0 (no cap) or more", c.MaxConns, c.MaxConnsPerIP)
	}
	if c.NodeID > maxNode {
		return fmt.Errorf("-node-id %d: want 0 to %d", c.NodeID, maxNode)
	}
	return nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
