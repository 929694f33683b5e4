package topology

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the versioned shard map in a control database. It is safe for
// concurrent use; Close closes its pool.
type Store struct {
	pool *pgxpool.Pool
	cfg  *pgx.ConnConfig // for Listen's own connection
}

// Open connects to the control database. dsn may name its password as
// $VAR or ${VAR}, expanded from the environment, or use a passfile.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s, err := ExpandDSN(dsn, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(s)
	if err != nil {
		return nil, errors.New("topology: control DSN: not a valid DSN")
	}
	pc.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("topology: control database: %w", err)
	}
	return &Store{pool: pool, cfg: pc.ConnConfig}, nil
}

// Close closes the store's connections.
func (s *Store) Close() { s.pool.Close() }

// Init creates the schema pgshard and its tables in the control database.
// Running it again changes nothing.
func (s *Store) Init(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, controlSchema)
	if err != nil {
		return fmt.Errorf("topology: init: %w", err)
	}
	return nil
}

// Current returns the newest map: ErrNoMap when none is stored,
// ErrNotInitialized when the schema is missing.
func (s *Store) Current(ctx context.Context) (*Map, error) {
	return s.version(ctx, s.pool, 0)
}

// Version returns the given version of the map.
func (s *Store) Version(ctx context.Context, v int64) (*Map, error) {
	if v <= 0 {
		return nil, fmt.Errorf("topology: version %d: want 1 or more", v)
	}
	return s.version(ctx, s.pool, v)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// version reads version v, or the newest when v is 0.
func (s *Store) version(ctx context.Context, q querier, v int64) (*Map, error) {
	m := &Map{}
	err := q.QueryRow(ctx, `SELECT version, changed_at, changed_by, db_user, reason FROM pgshard.maps
		WHERE version = $1 OR $1 = 0 ORDER BY version DESC LIMIT 1`, v).
		Scan(&m.Version, &m.ChangedAt, &m.ChangedBy, &m.DBUser, &m.Reason)
	if err != nil {
		return nil, storeError(err, v)
	}
	rows, err := q.Query(ctx, `SELECT name, range, primary_dsn, replica_dsns, state FROM pgshard.map_shards
		WHERE version = $1 ORDER BY position`, m.Version)
	if err != nil {
		return nil, storeError(err, v)
	}
	m.Shards, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Shard, error) {
		var sh Shard
		err := row.Scan(&sh.Name, &sh.Range, &sh.Primary, &sh.Replicas, &sh.State)
		return sh, err
	})
	if err != nil {
		return nil, storeError(err, v)
	}
	return m, nil
}

func storeError(err error, v int64) error {
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows) && v == 0:
		return ErrNoMap
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("topology: no map version %d", v)
	case errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000"):
		return ErrNotInitialized
	}
	return fmt.Errorf("topology: control database: %w", err)
}

// History returns up to limit versions, newest first (limit <= 0: all).
func (s *Store) History(ctx context.Context, limit int) ([]*Map, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := s.pool.Query(ctx, `SELECT version FROM pgshard.maps ORDER BY version DESC LIMIT $1`, limit)
	if err != nil {
		return nil, storeError(err, -1)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, storeError(err, -1)
	}
	out := make([]*Map, 0, len(versions))
	for _, v := range versions {
		m, err := s.version(ctx, s.pool, v)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Listen calls fn with each version announced on Channel until ctx ends or
// the connection fails; it returns why. ready, if not nil, is called once
// the LISTEN is in place: a change stored after it is announced.
func (s *Store) Listen(ctx context.Context, ready func(), fn func(version int64)) error {
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return fmt.Errorf("topology: listen: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("topology: listen: %w", err)
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("topology: listen: %w", err)
		}
		v, _ := strconv.ParseInt(n.Payload, 10, 64)
		fn(v)
	}
}

// Ping checks that the control database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.pool.Ping(ctx)
}
