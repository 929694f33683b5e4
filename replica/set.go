package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config names one shard's nodes.
type Config struct {
	// Name identifies the set (usually its shard) in errors, logs and stats.
	Name string
	// Primary is the DSN (libpq key=value or URL) of the node expected to
	// accept writes. Which node is the primary is detected, not configured:
	// after a promotion the promoted replica takes writes.
	Primary string
	// Replicas are the DSNs of the streaming replicas; may be empty.
	Replicas []string
	// Weights optionally gives each replica a relative weight for reads
	// (same order as Replicas). Nil or zero entries mean weight 1.
	Weights []int
	// Options tune checking, lag bounds and fallback.
	Options Options
}

// Set is one shard's primary and its streaming replicas. It sends writes to
// the node that reports itself primary and reads to a replica whose lag is
// within bounds. It is safe for concurrent use; Close stops its background
// checker and closes its pools.
type Set struct {
	name  string
	opts  Options
	nodes []*node
	now   func() time.Time
	base  time.Time // origin of clock()
	log   *slog.Logger
	trace Tracer

	primary   atomic.Pointer[node] // nil when no node or several report primary
	split     atomic.Bool
	fallback  *bucket
	rejected  atomic.Uint64 // reads refused with ErrNoReplica
	closed    atomic.Bool
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	// Checker-only state.
	hist        *history
	lastPrimary LSN // the primary's position at the last check that reached it
}

// New connects to every node of cfg, checks them once, and starts the
// background checker. It fails if the configuration is invalid or a pool
// cannot be created; a node that is down is not an error (it is checked
// again every interval), so a set can start while a replica is away.
func New(ctx context.Context, cfg Config) (*Set, error) {
	opts, err := cfg.Options.withDefaults()
	if err != nil {
		return nil, setError(cfg.Name, err)
	}
	if cfg.Primary == "" {
		return nil, setError(cfg.Name, fmt.Errorf("%w: Primary is empty", ErrInvalidConfig))
	}
	if len(cfg.Weights) > len(cfg.Replicas) {
		return nil, setError(cfg.Name, fmt.Errorf("%w: %d Weights for %d Replicas", ErrInvalidConfig, len(cfg.Weights), len(cfg.Replicas)))
	}
	for i, w := range cfg.Weights {
		if w < 0 {
			return nil, setError(cfg.Name, fmt.Errorf("%w: Weights[%d] is negative", ErrInvalidConfig, i))
		}
	}
	s := &Set{
		name:     cfg.Name,
		opts:     opts,
		now:      time.Now,
		base:     time.Now(),
		log:      opts.Logger,
		fallback: newBucket(opts.MaxFallbackRate, time.Now),
		done:     make(chan struct{}),
		hist:     newHistory(historySize(opts)),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.trace = opts.Tracer
	if s.trace == nil {
		s.trace = noTracer{}
	}
	s.log = s.log.With("shard", cfg.Name)
	dsns := append([]string{cfg.Primary}, cfg.Replicas...)
	for i, dsn := range dsns {
		weight := 1
		if i > 0 && i-1 < len(cfg.Weights) && cfg.Weights[i-1] > 0 {
			weight = cfg.Weights[i-1]
		}
		n, err := s.newNode(dsn, weight)
		if err != nil {
			s.closePools()
			what := "Primary"
			if i > 0 {
				what = fmt.Sprintf("Replicas[%d]", i-1)
			}
			return nil, setError(cfg.Name, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, what, err))
		}
		s.nodes = append(s.nodes, n)
	}

	s.checkAll(ctx, true)
	s.awaitPrimary(ctx)
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go s.run(bg)
	return s, nil
}

// awaitPrimary checks again, each interval, while no node reports primary,
// for up to ConnectTimeout or until ctx ends: on a loaded machine the
// first check can time out, and a set should not start blind to a primary
// that is merely slow to answer. A primary that is really down is left to
// the background checker.
func (s *Set) awaitPrimary(ctx context.Context) {
	deadline := time.Now().Add(s.opts.ConnectTimeout)
	for s.primary.Load() == nil && !s.split.Load() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.CheckInterval):
		}
		s.checkAll(ctx, true)
	}
}

func historySize(o Options) int {
	// Cover a few times MaxLag so a replica well past the bound still
	// gets a lag figure rather than "at least".
	n := int(4*o.MaxLag/o.CheckInterval) + 2
	return min(max(n, 8), 4096)
}

func (s *Set) newNode(dsn string, weight int) (*node, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New(redact(err.Error(), dsn))
	}
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > s.opts.ConnectTimeout {
		pc.ConnConfig.ConnectTimeout = s.opts.ConnectTimeout
	}
	check := pc.ConnConfig.Copy()
	check.Tracer = nil
	check.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if s.opts.ConfigurePool != nil {
		s.opts.ConfigurePool(pc)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, errors.New(redact(err.Error(), dsn))
	}
	n := &node{
		addr:   address(pc.ConnConfig),
		weight: weight,
		pool:   pool,
		check:  check,
	}
	n.st.Store(&status{})
	return n, nil
}

// address names a node by host, port and database: never by its password.
func address(c *pgx.ConnConfig) string {
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))) + "/" + c.Database
}

// PrimaryIndex returns which node takes writes now, as an index into the
// configured nodes (0 is Config.Primary, i is Config.Replicas[i-1]), or -1
// when no single node reports primary. After a promotion it names the
// promoted replica.
func (s *Set) PrimaryIndex() int {
	p := s.primary.Load()
	for i, n := range s.nodes {
		if n == p {
			return i
		}
	}
	return -1
}

// Name returns the set's name.
func (s *Set) Name() string { return s.name }

// Close stops the checker and closes every pool. Queries in flight fail.
// Close is idempotent.
func (s *Set) Close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.cancel != nil {
			s.cancel()
			<-s.done
		}
		s.closePools()
	})
}

func (s *Set) closePools() {
	for _, n := range s.nodes {
		n.pool.Close()
	}
}
