package reshard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/topology"
)

// fenceTrigger is the name of the trigger topology's fence puts on each
// table.
const fenceTrigger = "pgshard_fence"

// triggerDefs reads the definition of the fence trigger of every table
// that has one, by table.
func triggerDefs(ctx context.Context, c *pgx.Conn) (map[string]string, error) {
	rows, err := c.Query(ctx, `SELECT t.tgrelid::regclass::text, pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE t.tgname = $1`, fenceTrigger)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for rows.Next() {
		var table, def string
		if err := rows.Scan(&table, &def); err != nil {
			return nil, err
		}
		out[table] = def
	}
	return out, rows.Err()
}

// unfence puts the source's fence back as it was before a switch began.
// It first asks topology to install the previous fence; when a writer
// keeps a table locked (often why the switch failed), it instead puts
// back, table by table, only the triggers that changed since before,
// which a table the fence never reached does not need, and the fence's
// record.
func (m *Manager) unfence(ctx context.Context, st *State, before map[string]string, prev topology.FenceState, hadFence bool) error {
	return m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		err := topology.InstallFence(ctx, c, prev, 2*time.Second)
		if err == nil || before == nil {
			return err
		}
		now, err2 := triggerDefs(ctx, c)
		if err2 != nil {
			return errors.Join(err, err2)
		}
		deadline := time.Now().Add(10 * time.Second)
		for table, def := range now {
			if before[table] == def {
				continue
			}
			sql := "DROP TRIGGER " + fenceTrigger + " ON " + table
			if old, ok := before[table]; ok {
				sql = strings.Replace(old, "CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1)
			}
			for {
				err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 1000"); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, sql)
					return err
				})
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("put back the fence of %s: %w", table, err)
				}
			}
		}
		if hadFence {
			_, err = c.Exec(ctx, `UPDATE pgshard.fence SET shard = $1, range = $2, version = $3, closed = $4, changed_at = clock_timestamp()`,
				prev.Shard, prev.Range, prev.Version, prev.Closed)
		} else {
			_, err = c.Exec(ctx, `DELETE FROM pgshard.fence`)
		}
		return err
	})
}
