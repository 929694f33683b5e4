package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// pollEvery is how often pgcluster looks again at a server it waits for.
const pollEvery = 25 * time.Millisecond

// dsn returns the URL that connects user to database db on loopback port.
func dsn(user, password string, port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// connect opens one connection; a single try never takes more than a few seconds.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = 3 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

// execAll runs statements in order on one connection.
func execAll(ctx context.Context, dsn string, stmts ...string) error {
	conn, err := connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// errExited means that a server process ended while pgcluster waited for it.
var errExited = errors.New("server process exited")

// waitReady polls until the server behind dsn accepts connections. It gives up when ctx
// ends or exited (which may be nil) closes.
func waitReady(ctx context.Context, dsn string, exited <-chan struct{}) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		conn, err := connect(ctx, dsn)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections: %w (last error: %v)", ctx.Err(), err)
		case <-exited:
			return errExited
		case <-tick.C:
		}
	}
}

// waitCaughtUp waits until the replica behind replicaDSN streams from its upstream and has
// replayed the WAL position that the primary behind primaryDSN has written now.
func waitCaughtUp(ctx context.Context, primaryDSN, replicaDSN string) error {
	var target string
	p, err := connect(ctx, primaryDSN)
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	err = p.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&target)
	p.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	r, err := connect(ctx, replicaDSN)
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	defer r.Close(context.WithoutCancel(ctx))
	const q = `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)
		AND EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')`
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		var done bool
		if err := r.QueryRow(ctx, q, target).Scan(&done); err != nil {
			return fmt.Errorf("replica: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica has not replayed up to %s: %w", target, ctx.Err())
		case <-tick.C:
		}
	}
}
