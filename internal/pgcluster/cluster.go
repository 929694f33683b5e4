package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cluster is a running set of shards, each a primary and its streaming replicas, on real
// PostgreSQL servers that listen on 127.0.0.1. It is safe for concurrent use. Close it:
// that stops every server it started and removes their data.
type Cluster struct {
	kind    Backend
	why     string // why auto picked the local backend, or ""
	backend backend
	opts    Options
	shards  []Shard
	nodes   []*Node
	startup time.Duration

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	proxies []*Proxy
	closed  bool
}

// Shard describes one shard as it was started, a plain value that is safe for concurrent
// use: Primary stays the node that started as primary, even after Promote.
type Shard struct {
	Name     string // "shard0", "shard1", ...
	Primary  *Node  // "<shard>-primary"
	Replicas []*Node
}

// Start starts a cluster as opts describes and returns once every primary accepts
// connections and every replica streams and has caught up. The shards start in parallel.
// On failure it stops whatever it had started, and its error carries the end of the
// failing server's log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	began := time.Now()
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b, kind, why, err := newBackend(ctx, o, &portPicker{})
	if err != nil {
		return nil, err
	}
	c := &Cluster{kind: kind, why: why, backend: b, opts: o, shards: make([]Shard, o.Shards)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		failOnce sync.Once
		failure  error // the first, the others may only echo the cancellation
	)
	for i := range c.shards {
		c.shards[i] = Shard{Name: fmt.Sprintf("shard%d", i), Replicas: make([]*Node, o.Replicas)}
		wg.Go(func() {
			if err := c.startShard(ctx, &c.shards[i]); err != nil {
				failOnce.Do(func() { failure = err })
				cancel()
			}
		})
	}
	wg.Wait()
	for _, sh := range c.shards {
		for _, n := range append([]*Node{sh.Primary}, sh.Replicas...) {
			if n != nil {
				c.nodes = append(c.nodes, n)
			}
		}
	}
	if failure != nil {
		_ = c.Close()
		return nil, failure
	}
	c.startup = time.Since(began)
	return c, nil
}

// startShard starts the shard's primary, then its replicas in parallel.
func (c *Cluster) startShard(ctx context.Context, sh *Shard) error {
	srv, err := c.backend.startPrimary(ctx, sh.Name+"-primary")
	if err != nil {
		return err
	}
	sh.Primary = c.newNode(sh.Name, sh.Name+"-primary", srv)
	errs := make([]error, len(sh.Replicas))
	var wg sync.WaitGroup
	for i := range sh.Replicas {
		wg.Go(func() {
			name := fmt.Sprintf("%s-replica%d", sh.Name, i+1)
			srv, err := c.backend.startReplica(ctx, name, strings.ReplaceAll(name, "-", "_"), sh.Primary.srv)
			if err != nil {
				errs[i] = err
				return
			}
			sh.Replicas[i] = c.newNode(sh.Name, name, srv)
			errs[i] = sh.Replicas[i].WaitCaughtUp(ctx, sh.Primary)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) newNode(shard, name string, srv server) *Node {
	return &Node{name: name, shard: shard, user: c.opts.User, password: c.opts.Password,
		database: c.opts.Database, srv: srv, cluster: c}
}

// addProxy registers p to be closed with the cluster; false when the cluster is closed.
func (c *Cluster) addProxy(p *Proxy) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.proxies = append(c.proxies, p)
	return true
}

// Shards returns the shards in order: shard0, shard1, ...
func (c *Cluster) Shards() []Shard {
	out := make([]Shard, len(c.shards))
	for i, sh := range c.shards {
		out[i] = Shard{Name: sh.Name, Primary: sh.Primary, Replicas: append([]*Node(nil), sh.Replicas...)}
	}
	return out
}

// Nodes returns every node: shard0's primary and replicas, then shard1's, and so on.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Node returns the node with the given name, such as "shard1-replica1".
func (c *Cluster) Node(name string) (*Node, error) {
	for _, n := range c.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownNode, name)
}

// CAFile returns the PEM file of the certificate authority that signed the servers'
// certificate when Options.TLS is set, or "" otherwise. Use it as sslrootcert with
// sslmode=verify-full.
func (c *Cluster) CAFile() string { return c.backend.caFile() }

// Backend returns the backend that runs the servers: BackendLocal or BackendDocker.
func (c *Cluster) Backend() Backend { return c.kind }

// BackendReason says in one line why the cluster runs the local backend when docker
// could have been chosen (auto found no engine or no image, or an option needs the
// local backend); "" otherwise.
func (c *Cluster) BackendReason() string { return c.why }

// StartupTime returns how long Start took.
func (c *Cluster) StartupTime() time.Duration { return c.startup }

// String describes the cluster's shape and servers, e.g.
// "2 shards x (1 primary + 1 replica), local PostgreSQL 15.18".
func (c *Cluster) String() string {
	return fmt.Sprintf("%s x (1 primary + %s), %s", count(len(c.shards), "shard"),
		count(c.opts.Replicas, "replica"), c.backend.describe())
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// Close closes every proxy, thaws every frozen node, stops every server of the cluster
// and removes their data, unless Options.DataDir asked to keep it. It is safe to call
// more than once; later calls return the first's result.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c.mu.Lock()
		c.closed = true
		proxies := c.proxies
		c.mu.Unlock()
		for _, p := range proxies {
			_ = p.Close()
		}
		// Each server's close thaws it before it stops it.
		errs := make([]error, len(c.nodes)+1)
		var wg sync.WaitGroup
		for i, n := range c.nodes {
			wg.Go(func() {
				if err := n.srv.close(ctx); err != nil {
					errs[i] = &NodeError{Node: n.name, Op: "close", Err: err}
				}
			})
		}
		wg.Wait()
		errs[len(c.nodes)] = c.backend.close(ctx)
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}
