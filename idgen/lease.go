package idgen

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is where leases live: a *pgxpool.Pool, *pgx.Conn or pgx.Tx on one
// PostgreSQL primary that every generator sharing node numbers uses.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// setupSQL creates the lease table with a row per node number. The
// advisory lock serialises concurrent first users.
const setupSQL = `SELECT pg_advisory_xact_lock(hashtext('pgshard idgen setup'));
CREATE TABLE IF NOT EXISTS %[1]s (
	node int PRIMARY KEY CHECK (node >= 0 AND node < 1024),
	holder text NOT NULL DEFAULT '',
	expires timestamptz NOT NULL DEFAULT '-infinity',
	ceiling bigint NOT NULL DEFAULT 0
);
INSERT INTO %[1]s (node) SELECT generate_series(0, 1023) ON CONFLICT (node) DO NOTHING`

// acquireSQL takes the lowest free node number below $4: one whose lease
// has expired on the database's clock. It returns the number, the old
// ceiling (the new holder starts above it) and the new one, $5 past the old
// or $3, whichever is later.
const acquireSQL = `WITH pick AS (
	SELECT node, ceiling FROM %[1]s
	WHERE node < $4 AND expires < now()
	ORDER BY node LIMIT 1
	FOR UPDATE SKIP LOCKED
)
UPDATE %[1]s l SET holder = $1, expires = now() + $2 * interval '1 millisecond', ceiling = greatest(l.ceiling + $5, $3)
FROM pick WHERE l.node = pick.node
RETURNING l.node, pick.ceiling, l.ceiling`

// renewSQL extends a lease its holder still has, and raises its ceiling.
const renewSQL = `UPDATE %[1]s SET expires = now() + $3 * interval '1 millisecond', ceiling = greatest(ceiling, $4)
WHERE node = $1 AND holder = $2
RETURNING ceiling`

// releaseSQL ends a lease, keeping its ceiling for the next holder.
const releaseSQL = `UPDATE %[1]s SET expires = '-infinity' WHERE node = $1 AND holder = $2`

func setup(ctx context.Context, db DB, table string) error {
	// Simple protocol: several statements in one implicit transaction.
	_, err := db.Exec(ctx, fmt.Sprintf(setupSQL, table), pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return fmt.Errorf("idgen: creating lease table %s: %w", table, err)
	}
	return nil
}

// ms converts a duration to whole milliseconds for SQL.
func ms(d time.Duration) int64 { return d.Milliseconds() }
