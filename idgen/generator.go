package idgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options tune a Generator. The zero value is ready to use.
type Options struct {
	// Table is the lease table, created on first use. Default
	// "pgshard_id_leases". Generators that must not collide share it.
	Table string
	// TTL is how long a lease lasts unless renewed. Default 10 s. A
	// generator that cannot reach the database stops issuing IDs within
	// TTL; a crashed one's number is free again after TTL.
	TTL time.Duration
	// Renew is how often the lease is renewed. Default TTL/3.
	Renew time.Duration
	// Nodes limits the node numbers taken to 0 to Nodes-1. Default (zero)
	// 1024, every number.
	Nodes int
	// Logger receives lease renewals that fail and leases lost. Nil is silent.
	Logger *slog.Logger
	// Now is the wall clock for the IDs' milliseconds. Nil means
	// time.Now. Leases are timed on the monotonic clock regardless.
	Now func() time.Time
}

// Generator issues IDs under a node number it leases. It is safe for
// concurrent use; Close releases the lease.
type Generator struct {
	db     DB
	opts   Options
	table  string
	holder string
	node   int64
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	valid   time.Time // monotonic: the lease is proven until then
	ceiling int64     // the highest millisecond an ID may carry
	last    int64     // millisecond of the last ID
	seq     int64
	err     error // ErrLeaseLost or ErrClosed once it stops for good
}

// New takes a free node number from the lease table in db (creating the
// table on first use) and starts renewing it until Close.
func New(ctx context.Context, db DB, opts Options) (*Generator, error) {
	if opts.Table == "" {
		opts.Table = "pgshard_id_leases"
	}
	switch {
	case opts.TTL < 0:
		return nil, fmt.Errorf("%w: TTL is negative (%s)", ErrInvalidOptions, opts.TTL)
	case opts.TTL == 0:
		opts.TTL = 10 * time.Second
	case opts.TTL < 100*time.Millisecond:
		return nil, fmt.Errorf("%w: TTL %s is under 100ms", ErrInvalidOptions, opts.TTL)
	}
	switch {
	case opts.Renew < 0 || opts.Renew >= opts.TTL:
		return nil, fmt.Errorf("%w: Renew %s: want 0 (TTL/3) or between 0 and TTL (%s)", ErrInvalidOptions, opts.Renew, opts.TTL)
	case opts.Renew == 0:
		opts.Renew = opts.TTL / 3
	}
	switch {
	case opts.Nodes < 0 || opts.Nodes > MaxNodes:
		return nil, fmt.Errorf("%w: Nodes %d: want 1 to %d", ErrInvalidOptions, opts.Nodes, MaxNodes)
	case opts.Nodes == 0:
		opts.Nodes = MaxNodes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	table := pgx.Identifier{opts.Table}.Sanitize()
	g := &Generator{db: db, opts: opts, table: table, holder: holderName(), log: opts.Logger, done: make(chan struct{})}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if err := setup(ctx, db, table); err != nil {
		return nil, err
	}
	if err := g.acquire(ctx); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel = cancel
	go g.renewLoop(bg)
	return g, nil
}

// holderName names this generator in the lease table: host, process and
// a random part, so that two generators of one process differ.
func holderName() string {
	host, _ := os.Hostname()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// margin is how much of a lease the generator leaves unused, against the
// database's clock and this one running at slightly different rates.
func (g *Generator) margin() time.Duration { return g.opts.TTL / 10 }

// reserve is how far past the clock a renewal raises the ceiling: past
// the next renewal or two, so that IDs are not held up between them.
func (g *Generator) reserve() int64 { return ms(2 * g.opts.TTL) }

func (g *Generator) acquire(ctx context.Context) error {
	sent := time.Now()
	want := millis(g.opts.Now()) + g.reserve()
	var node, old, ceiling int64
	err := g.db.QueryRow(ctx, fmt.Sprintf(acquireSQL, g.table), g.holder, ms(g.opts.TTL), want, g.opts.Nodes, g.reserve()).Scan(&node, &old, &ceiling)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w (%d numbers in %s)", ErrNoFreeNode, g.opts.Nodes, g.opts.Table)
	}
	if err != nil {
		return fmt.Errorf("idgen: taking a node lease: %w", err)
	}
	g.node = node
	g.valid = sent.Add(g.opts.TTL - g.margin())
	g.ceiling = ceiling
	// IDs start above every millisecond the number's earlier holders could use.
	g.last, g.seq = old, maxSeq
	return nil
}

func (g *Generator) renewLoop(ctx context.Context) {
	defer close(g.done)
	t := time.NewTicker(g.opts.Renew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := g.renew(ctx); errors.Is(err, ErrLeaseLost) {
			g.log.Error("idgen: node lease lost; no more IDs", "node", g.node)
			return
		} else if err != nil && ctx.Err() == nil {
			g.log.Warn("idgen: renewing the node lease failed", "node", g.node, "err", err.Error())
		}
	}
}

// renew extends the lease; ErrLeaseLost when another generator holds it.
func (g *Generator) renew(ctx context.Context) error {
	g.mu.Lock()
	want := max(millis(g.opts.Now()), g.last) + g.reserve()
	g.mu.Unlock()
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, g.opts.TTL-g.margin())
	defer cancel()
	var ceiling int64
	err := g.db.QueryRow(rctx, fmt.Sprintf(renewSQL, g.table), g.node, g.holder, ms(g.opts.TTL), want).Scan(&ceiling)
	g.mu.Lock()
	defer g.mu.Unlock()
	if errors.Is(err, pgx.ErrNoRows) {
		g.err = fmt.Errorf("%w (node %d)", ErrLeaseLost, g.node)
		return g.err
	}
	if err != nil {
		return err
	}
	g.valid = sent.Add(g.opts.TTL - g.margin())
	g.ceiling = max(g.ceiling, ceiling)
	return nil
}

// Next returns a new ID, or an error when the generator cannot prove its
// lease (ErrLeaseExpired, ErrLeaseLost), has closed, or has used up its
// reserved milliseconds (ErrCeiling).
func (g *Generator) Next() (int64, error) {
	now := g.opts.Now()
	mono := time.Now()
	ms := millis(now)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.err != nil:
		return 0, g.err
	case !mono.Before(g.valid):
		return 0, fmt.Errorf("%w (node %d)", ErrLeaseExpired, g.node)
	}
	last, seq := g.last, g.seq
	if ms > last {
		last, seq = ms, 0
	} else if seq++; seq > maxSeq {
		// The clock stepped back, or 4096 IDs this millisecond: borrow the next.
		last, seq = last+1, 0
	}
	if last > g.ceiling {
		return 0, fmt.Errorf("%w (node %d, millisecond %d)", ErrCeiling, g.node, g.ceiling)
	}
	g.last, g.seq = last, seq
	return last<<(NodeBits+SeqBits) | g.node<<SeqBits | seq, nil
}

// Node returns the leased node number.
func (g *Generator) Node() int { return int(g.node) }

// Close stops renewing and releases the lease, so that its number is free
// at once; IDs issued under it stay unique (the ceiling stays).
func (g *Generator) Close(ctx context.Context) error {
	g.mu.Lock()
	if errors.Is(g.err, ErrClosed) {
		g.mu.Unlock()
		return nil
	}
	lost := g.err != nil
	g.err = ErrClosed
	g.mu.Unlock()
	g.cancel()
	<-g.done
	if lost {
		return nil
	}
	if _, err := g.db.Exec(ctx, fmt.Sprintf(releaseSQL, g.table), g.node, g.holder); err != nil {
		return fmt.Errorf("idgen: releasing node %d: %w", g.node, err)
	}
	return nil
}
