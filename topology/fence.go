package topology

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// FenceState is what a shard's primary records in its table pgshard.fence:
// the range it serves and the map version from which a router may write
// to it.
type FenceState struct {
	// Shard is the shard's name in the map.
	Shard string `json:"shard"`
	// Range is the key range the shard serves; "" when it serves none.
	Range string `json:"range"`
	// Version is the oldest map version a router's write may be routed
	// with; 0 lets every router write.
	Version int64 `json:"version"`
	// Closed refuses every router's writes, whatever their version.
	Closed bool `json:"closed"`
	// ChangedAt is when the fence was installed (set by the server).
	ChangedAt time.Time `json:"changed_at"`
	// Primary is, in a Plan, the DSN (as stored) of the node the fence is
	// installed on: the shard's primary in the new map, or in the old one
	// for a shard that leaves. The shard does not record it.
	Primary string `json:"primary,omitempty"`
	// Lease is how long a router may go on writing to the shard after it
	// last read the fence and found its map current (see the package
	// doc); 0 means DefaultLease.
	Lease time.Duration `json:"lease,omitempty"`
	// RelaxAfter is when, by the shard's clock, every router whose map is
	// older than Version has lost its lease: from then on RelaxFence may
	// remove the fence's triggers. Set by InstallFence.
	RelaxAfter time.Time `json:"relax_after,omitzero"`
	// RelaxedAt is when RelaxFence began to remove the fence's triggers;
	// zero while they guard the shard.
	RelaxedAt time.Time `json:"relaxed_at,omitzero"`
}

// DefaultLease is a router's lease on a shard whose fence names none, or
// that has no fence: a router that has not read a shard's fence for this
// long stops writing to it until it has.
const DefaultLease = 10 * time.Second

// VersionParam is the run-time parameter by which a router's connection
// tells a shard which map version its replica set was built from. A
// connection without it (psql, migrations, a static router) is not
// checked by the fence.
const VersionParam = "pgshard.map_version"

const fenceSchema = `
CREATE SCHEMA IF NOT EXISTS pgshard;
CREATE TABLE IF NOT EXISTS pgshard.fence (
	one        boolean PRIMARY KEY DEFAULT true CHECK (one),
	shard      text NOT NULL,
	range      text NOT NULL,
	version    bigint NOT NULL,
	closed     boolean NOT NULL,
	changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER TABLE pgshard.fence
	ADD COLUMN IF NOT EXISTS lease_ms bigint NOT NULL DEFAULT 10000,
	ADD COLUMN IF NOT EXISTS relax_after timestamptz,
	ADD COLUMN IF NOT EXISTS relaxed_at timestamptz,
	DROP COLUMN IF EXISTS guard;
-- Routers read the fence to renew their leases, whatever their role.
GRANT USAGE ON SCHEMA pgshard TO PUBLIC;
GRANT SELECT ON pgshard.fence TO PUBLIC;`

// The trigger function only raises: the trigger's WHEN clause, rewritten
// at each fence with its state as constants, decides without calling a
// function, reading only the connection's parameter, so a write that
// passes pays one expression.
const fenceCheck = `
CREATE OR REPLACE FUNCTION pgshard.fence_check() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	RAISE EXCEPTION 'pgshard: write routed with map version %% refused: shard %[2]s is fenced at version %[1]d',
		current_setting('pgshard.map_version', true)
		USING ERRCODE = 'PGS01', DETAIL = 'version=%[1]d closed=%[3]t';
END $f$;`

// fenceWhen is the trigger's condition: a router's connection (one that
// sets the parameter) whose map is older than the fence, or any router's
// when the shard is closed.
func fenceWhen(st FenceState) string {
	if st.Closed {
		return whenClosed
	}
	return strings.Replace(whenOlder, "%d", strconv.FormatInt(st.Version, 10), 1)
}

// The two conditions of fenceWhen, which the event trigger of
// GuardNewTables builds too.
const (
	whenClosed = "coalesce(current_setting('pgshard.map_version', true), '') <> ''"
	whenOlder  = "coalesce(nullif(current_setting('pgshard.map_version', true), '')::bigint, 9223372036854775807) < %d"
)

func createTrigger(table string, st FenceState) string {
	return "CREATE OR REPLACE TRIGGER pgshard_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON " + table +
		" FOR EACH STATEMENT WHEN (" + fenceWhen(st) + ") EXECUTE FUNCTION pgshard.fence_check()"
}

// userTables lists the tables the fence guards: every table and
// partitioned table outside the system schemas and pgshard.
const userTables = `
SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
	AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgshard') AND n.nspname NOT LIKE 'pg\_toast%'
ORDER BY c.oid`

// ReadFence returns the fence a shard's primary records, and false when it
// has none.
func ReadFence(ctx context.Context, conn *pgx.Conn) (FenceState, bool, error) {
	var st FenceState
	var leaseMS int64
	var relaxAfter, relaxedAt *time.Time
	err := conn.QueryRow(ctx, `SELECT shard, range, version, closed, changed_at, lease_ms, relax_after, relaxed_at FROM pgshard.fence`).
		Scan(&st.Shard, &st.Range, &st.Version, &st.Closed, &st.ChangedAt, &leaseMS, &relaxAfter, &relaxedAt)
	if isCode(err, "42703") { // a fence installed before leases: the next fence adds them
		leaseMS = DefaultLease.Milliseconds()
		err = conn.QueryRow(ctx, `SELECT shard, range, version, closed, changed_at FROM pgshard.fence`).
			Scan(&st.Shard, &st.Range, &st.Version, &st.Closed, &st.ChangedAt)
	}
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) || isCode(err, "42P01") || isCode(err, "3F000") {
			return FenceState{}, false, nil
		}
		return FenceState{}, false, err
	}
	st.Lease = time.Duration(leaseMS) * time.Millisecond
	if relaxAfter != nil {
		st.RelaxAfter = *relaxAfter
	}
	if relaxedAt != nil {
		st.RelaxedAt = *relaxedAt
	}
	return st, true, nil
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// InstallFence records st on the shard whose primary conn is connected to,
// and puts the fence trigger on every table. It waits, at most lockTimeout
// in all, for the write transactions in flight, and fails past it: each
// table's trigger is replaced in a transaction of its own, which waits for
// the writers of that table (and holds it from new ones until it commits),
// so the fence never holds one table while waiting for another, and no
// writer can deadlock with it; then it waits until every transaction that
// had written something before the last trigger was in place has ended.
// From its return, a write routed with an older map commits nowhere on the
// shard: it was either committed before, or refused.
//
// It also records when the triggers may go (st.RelaxAfter, see
// RelaxFence): twice the longest lease a router may hold from a read of
// the fence made before this one. A table created later is fenced at once
// if a superuser has guarded the shard (GuardNewTables, which InstallFence
// does itself when conn is a superuser's); otherwise a router with an
// older map stops writing to it when its lease ends.
func InstallFence(ctx context.Context, conn *pgx.Conn, st FenceState, lockTimeout time.Duration) error {
	if lockTimeout <= 0 {
		lockTimeout = 5 * time.Second
	}
	if !validName(st.Shard) {
		return fmt.Errorf("%w: shard name %q", ErrInvalidMap, st.Shard)
	}
	if st.Lease < 0 {
		return fmt.Errorf("topology: fence shard %s: lease %s is negative", st.Shard, st.Lease)
	}
	lease := st.Lease
	if lease == 0 {
		lease = DefaultLease
	}
	deadline := time.Now().Add(lockTimeout)
	unlock, err := fenceLock(ctx, conn, deadline)
	if err != nil {
		return fmt.Errorf("wait for another fence of the shard: %w", err)
	}
	defer unlock()
	prev, had, err := ReadFence(ctx, conn)
	if err != nil {
		return err
	}
	// A router that read the fence before this one holds a lease of the
	// previous fence's length, or DefaultLease if there was none.
	held := DefaultLease
	var prevRelax *time.Time
	if had {
		held = prev.Lease
		if !prev.RelaxAfter.IsZero() {
			prevRelax = &prev.RelaxAfter
		}
	}
	wait := 2 * max(held, lease)
	if st.Version == 0 && !st.Closed {
		wait = 0 // no router's map is older than version 0
	}
	var tables []string
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fenceSchema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(fenceCheck, st.Version, st.Shard, st.Closed)); err != nil {
			return err
		}
		var super bool
		if err := tx.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
			return err
		}
		if super {
			if _, err := tx.Exec(ctx, guardNewTables()); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, userTables)
		if err != nil {
			return err
		}
		tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return err
	}
	for _, t := range tables {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			left := max(time.Until(deadline).Milliseconds(), 1)
			if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", left)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, createTrigger(t, st))
			return err
		})
		if err != nil {
			return fmt.Errorf("wait for the writes in flight on %s: %w", t, err)
		}
	}
	if err := waitWriters(ctx, conn, deadline); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `INSERT INTO pgshard.fence (shard, range, version, closed, lease_ms, relax_after, relaxed_at)
		VALUES ($1, $2, $3, $4, $5, greatest(clock_timestamp() + $6 * interval '1 millisecond', $7), NULL)
		ON CONFLICT (one) DO UPDATE SET shard = $1, range = $2, version = $3, closed = $4, changed_at = clock_timestamp(),
			lease_ms = $5, relax_after = EXCLUDED.relax_after, relaxed_at = NULL`,
		st.Shard, st.Range, st.Version, st.Closed, lease.Milliseconds(), wait.Milliseconds(), prevRelax)
	return err
}

// waitWriters waits until no transaction of this database that had
// written something (it has a transaction ID) when it was called is still
// open.
func waitWriters(ctx context.Context, conn *pgx.Conn, deadline time.Time) error {
	var mark time.Time
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&mark); err != nil {
		return err
	}
	for {
		var open int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL AND xact_start < $1`, mark).Scan(&open)
		if err != nil {
			return err
		}
		if open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for the writes in flight: %d write transactions still open", open)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// validName keeps shard names plain: they appear in SQL text, tokens and
// logs.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c == '.' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
