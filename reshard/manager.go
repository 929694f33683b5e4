package reshard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/topology"
)

// Options tune a Manager. The zero value works: DSNs expanded from the
// environment, 4 tables copied at once, silent.
type Options struct {
	// Lookup expands the ${VAR}s of the stored DSNs. Default os.LookupEnv.
	Lookup func(string) (string, bool)
	// CopyWorkers is how many tables are copied at once. Default 4.
	CopyWorkers int
	// StatusInterval is how often the stream reports its position to the
	// source and looks at the workflow's state. Default 500 ms.
	StatusInterval time.Duration
	// RetryInterval is how long Run waits before it resumes after an
	// error a retry may cure (a connection lost). Default 1 s.
	RetryInterval time.Duration
	// PgDump is the pg_dump program that copies the schema to a target
	// that has none. Default: pg_dump on $PATH, else the newest under
	// /usr/lib/postgresql/*/bin.
	PgDump string
	// Logger, if not nil, is told of each phase and of each error Run
	// retries after.
	Logger *slog.Logger
}

// Manager runs resharding workflows whose state a topology store keeps.
// It is safe for concurrent use, and holds no connection between calls.
type Manager struct {
	store *topology.Store
	o     Options
	// crash, set by tests, is called at the named points of a step; an
	// error stops the step there as a crash of the process would.
	crash func(point string) error
}

// crashed asks the test hook whether the process "dies" at point.
func (m *Manager) crashed(point string) error {
	if m.crash == nil {
		return nil
	}
	return m.crash(point)
}

// New returns a Manager over store.
func New(store *topology.Store, o Options) *Manager {
	if o.Lookup == nil {
		o.Lookup = os.LookupEnv
	}
	if o.CopyWorkers <= 0 {
		o.CopyWorkers = 4
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = 500 * time.Millisecond
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{store: store, o: o}
}

// connect opens a connection to a stored DSN.
func (m *Manager) connect(ctx context.Context, what, stored string) (*pgx.Conn, error) {
	cfg, err := m.config(what, stored)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("reshard: %s: %w", what, err)
	}
	return c, nil
}

func (m *Manager) config(what, stored string) (*pgx.ConnConfig, error) {
	dsn, err := topology.ExpandDSN(stored, m.o.Lookup)
	if err != nil {
		return nil, fmt.Errorf("reshard: %s: %w", what, err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("reshard: %s: not a valid DSN", what)
	}
	cfg.RuntimeParams["application_name"] = "pgshard-reshard"
	return cfg, nil
}

// replicationConn opens a logical replication connection to the source.
func (m *Manager) replicationConn(ctx context.Context, st *State) (*pgconn.PgConn, error) {
	return m.replicationConnTo(ctx, "source "+st.Source.Shard, st.Source.Primary)
}

// replicationConnTo opens a logical replication connection to a node.
func (m *Manager) replicationConnTo(ctx context.Context, what, stored string) (*pgconn.PgConn, error) {
	cfg, err := m.config(what, stored)
	if err != nil {
		return nil, err
	}
	pc := cfg.Config.Copy()
	pc.RuntimeParams["replication"] = "database"
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgconn.ConnectConfig(cctx, pc)
	if err != nil {
		return nil, fmt.Errorf("reshard: %s: replication connection: %w", what, err)
	}
	return c, nil
}

// withConn runs fn on a connection of its own.
func (m *Manager) withConn(ctx context.Context, what, stored string, fn func(*pgx.Conn) error) error {
	c, err := m.connect(ctx, what, stored)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	return fn(c)
}

func (m *Manager) source(ctx context.Context, st *State) (*pgx.Conn, error) {
	return m.connect(ctx, "source "+st.Source.Shard, st.Source.Primary)
}

func (m *Manager) target(ctx context.Context, t Target) (*pgx.Conn, error) {
	return m.connect(ctx, "target "+t.Name, t.Primary)
}

// eachTarget runs fn on a connection to each target in turn.
func (m *Manager) eachTarget(ctx context.Context, st *State, fn func(Target, *pgx.Conn) error) error {
	var errs []error
	for _, t := range st.Targets {
		err := m.withConn(ctx, "target "+t.Name, t.Primary, func(c *pgx.Conn) error { return fn(t, c) })
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", t.Name, err))
		}
	}
	return errors.Join(errs...)
}
