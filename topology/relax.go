package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// fenceLockKey is the advisory lock that keeps InstallFence and
// RelaxFence of one shard apart.
const fenceLockKey = 0x7067736866656e63 // "pgshfenc"

// dropWait bounds how long RelaxFence waits for each table's lock.
const dropWait = 200 * time.Millisecond

// fenceLock takes the shard's fence lock on conn, waiting until deadline,
// and returns what releases it.
func fenceLock(ctx context.Context, conn *pgx.Conn, deadline time.Time) (unlock func(), err error) {
	for {
		ok, err := tryFenceLock(ctx, conn)
		if err != nil {
			return nil, err
		}
		if ok {
			return func() {
				_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(fenceLockKey))
			}, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func tryFenceLock(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(fenceLockKey)).Scan(&ok)
	return ok, err
}

// RelaxFence removes the fence's triggers from the shard whose primary
// conn is connected to, once they are no longer needed, and reports
// whether it did. They are needed while a router whose map is older than
// the fence may still write: a router writes to a shard only while it
// holds a lease, renewed each time it reads the shard's fence and finds
// its map at least as new, so a router with an older map has lost its
// lease at most FenceState.Lease after the fence was installed, and
// InstallFence sets RelaxAfter twice as late. RelaxFence does nothing
// before RelaxAfter, on a shard fenced as a whole (Closed), or when
// another fence or relax of the shard is under way; it waits, at most
// lockTimeout in all, for the transactions begun before RelaxAfter, and
// fails past it, leaving the fence as it was. Routers that follow the
// store call it themselves when the time comes.
func RelaxFence(ctx context.Context, conn *pgx.Conn, lockTimeout time.Duration) (bool, error) {
	if lockTimeout <= 0 {
		lockTimeout = 5 * time.Second
	}
	deadline := time.Now().Add(lockTimeout)
	ok, err := tryFenceLock(ctx, conn)
	if err != nil || !ok {
		return false, err
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(fenceLockKey))
	}()
	var relaxAfter time.Time
	var due bool
	err = conn.QueryRow(ctx, `SELECT coalesce(relax_after, 'infinity'), NOT closed AND relaxed_at IS NULL AND clock_timestamp() >= relax_after
		FROM pgshard.fence`).Scan(&relaxAfter, &due)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || isCode(err, "42P01") || isCode(err, "3F000") || isCode(err, "42703"):
		return false, nil // no fence, or one installed before leases: it stays
	case err != nil:
		return false, err
	case !due:
		return false, nil
	}
	// A transaction begun before RelaxAfter may belong to a router that
	// held its lease when it began and writes later.
	if err := waitOpen(ctx, conn, relaxAfter, deadline); err != nil {
		return false, err
	}
	// Marked first, so that a table created meanwhile is not fenced again.
	if _, err := conn.Exec(ctx, "UPDATE pgshard.fence SET relaxed_at = clock_timestamp()"); err != nil {
		return false, err
	}
	if err := dropTriggers(ctx, conn, deadline); err != nil {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "UPDATE pgshard.fence SET relaxed_at = NULL")
		return false, err
	}
	return true, nil
}

// dropTriggers removes the fence trigger from every table, one table per
// transaction, as InstallFence puts them. Each waits for its table's lock
// at most dropWait: the queries that queue behind a waiting DROP TRIGGER
// wait with it, and a relax, unlike a fence, can come back later.
func dropTriggers(ctx context.Context, conn *pgx.Conn, deadline time.Time) error {
	rows, err := conn.Query(ctx, `SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'pgshard_fence' AND NOT tgisinternal ORDER BY tgrelid`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			left := min(max(time.Until(deadline), time.Millisecond), dropWait)
			if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", left.Milliseconds())); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "DROP TRIGGER IF EXISTS pgshard_fence ON "+t)
			return err
		})
		if err != nil {
			return fmt.Errorf("relax the fence on %s: %w", t, err)
		}
	}
	return nil
}

// waitOpen waits until no client transaction of this database begun before
// mark is still open.
func waitOpen(ctx context.Context, conn *pgx.Conn, mark time.Time, deadline time.Time) error {
	for {
		var open int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND xact_start < $1`, mark).Scan(&open)
		if err != nil {
			return err
		}
		if open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("relax the fence: %d transactions begun before it may go are still open", open)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
