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
	name    string
	opts    Options
	nodes   []*node
	now     func() time.Time
	base    time.Time // origin of clock()
	log     *slog.Logger
	trace   Tracer
	tracing bool // trace is the caller's, not noTracer

	primary   atomic.Pointer[node] // nil when no node or several report primary
	split     atomic.Bool
	fallback  *bucket
	rejected  atomic.Uint64 // reads refused with ErrNoReplica
	closed    atomic.Bool
	cancel    context.CancelFunc
	done      chan struct{}
	kick      chan struct{}
	closeOnce sync.Once

	dialTimeout time.Duration // of the checker's connections
	attempt     time.Duration // how long a read waits for an answer before trying elsewhere
	// margin is how long before the end of its eligibility a replica stops
	// being chosen: a read is sent, and its snapshot taken on the server,
	// a moment after the choice, later still on a loaded machine.
	margin time.Duration

	mu   sync.Mutex // serialises the core and the publication of its decisions
	core *core
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
		kick:     make(chan struct{}, 1),
		core:     newCore(opts),
		// The checker dials in the background, so a slow handshake holds
		// up no check; it gets the pool's full time, since a dial that
		// times out counts against the node (SCRAM on a loaded machine can
		// take a good part of a second).
		dialTimeout: opts.ConnectTimeout,
		attempt:     opts.AttemptTimeout,
		margin:      min(max(opts.CheckInterval/5, 10*time.Millisecond), opts.MaxLag/10),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.trace, s.tracing = opts.Tracer, opts.Tracer != nil
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
		info := PoolInfo{Shard: cfg.Name, Index: i, Configured: RolePrimary}
		if i > 0 {
			info.Configured = RoleReplica
		}
		n, err := s.newNode(dsn, weight, info)
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

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.firstChecks(ctx, bg)
	go s.run(bg)
	go s.sweepEvery(bg)
	return s, nil
}

// firstChecks checks every node before New returns, waiting for the
// checker's dials (within the dial timeout), and checks again each
// interval while no node reports primary, for up to ConnectTimeout or
// until ctx ends: on a loaded machine the first check can time out, and a
// set should not start blind to a primary that is merely slow to answer.
// A primary that is really down is left to the background checker.
func (s *Set) firstChecks(ctx, bg context.Context) {
	deadline := time.Now().Add(s.opts.ConnectTimeout)
	for {
		for _, n := range s.nodes {
			if n.conn == nil {
				s.dial(bg, n)
			}
		}
		for _, n := range s.nodes {
			if n.dialing == nil {
				continue
			}
			select {
			case d := <-n.dialing:
				n.dialing <- d // checkNode takes it
			case <-ctx.Done():
				return
			}
		}
		s.checkAll(bg)
		if s.primary.Load() != nil || s.split.Load() || !time.Now().Before(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.CheckInterval):
		}
	}
}

// PoolInfo tells Options.ConfigurePool which pool it configures.
type PoolInfo struct {
	Shard      string // the set's name
	Node       string // host:port/database
	Index      int    // 0 for Config.Primary, i for Config.Replicas[i-1]
	Configured Role   // RolePrimary for Config.Primary, else RoleReplica; the node's actual role is detected
}

func (s *Set) newNode(dsn string, weight int, info PoolInfo) (*node, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New(redact(err.Error(), dsn))
	}
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > s.opts.ConnectTimeout {
		pc.ConnConfig.ConnectTimeout = s.opts.ConnectTimeout
	}
	info.Node = address(pc.ConnConfig)
	if s.opts.ConfigurePool != nil {
		s.opts.ConfigurePool(info, pc)
	}
	// The checker's connections, and those Connect makes, connect as the
	// pool's do (TLS, BeforeConnect, tracer), but run only simple queries.
	check := pc.ConnConfig.Copy()
	check.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	n := &node{
		addr:          info.Node,
		weight:        weight,
		check:         check,
		beforeConnect: pc.BeforeConnect,
	}
	n.st.Store(&status{})
	silence := make(chan struct{})
	n.silence.Store(&silence)
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, errors.New(redact(err.Error(), dsn))
	}
	n.pool = pool
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

// Connect opens a connection of its own to the node that takes writes now,
// configured as its pool's connections are (Options.ConfigurePool's TLS,
// BeforeConnect and tracer included), for work a pool cannot do, such as
// LISTEN. The caller closes it.
func (s *Set) Connect(ctx context.Context) (*pgx.Conn, error) {
	p, err := s.writer()
	if err != nil {
		return nil, err
	}
	cfg := p.check.Copy()
	cfg.DefaultQueryExecMode = p.pool.Config().ConnConfig.DefaultQueryExecMode
	if p.beforeConnect != nil {
		if err := p.beforeConnect(ctx, cfg); err != nil {
			return nil, setError(s.name, fmt.Errorf("node %s: %w", p.addr, err))
		}
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, setError(s.name, fmt.Errorf("node %s: %w", p.addr, err))
	}
	return c, nil
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
