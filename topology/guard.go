package topology

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// guardNewTables is an event trigger that fences each table created while
// a fence holds, with the condition InstallFence gives the fence (built
// from the row of pgshard.fence as fenceWhen builds it), so that a fence
// installed later by a role that cannot create event triggers still
// covers the tables made after it. It runs as its owner, a superuser, so
// that it can put the trigger on a table whatever role made it; without a
// fence row or schema it does nothing.
func guardNewTables() string {
	return `
CREATE SCHEMA IF NOT EXISTS pgshard;
CREATE OR REPLACE FUNCTION pgshard.fence_new_table() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
DECLARE
	r record;
	f record;
	cond text;
BEGIN
	BEGIN
		SELECT version, closed INTO f FROM pgshard.fence WHERE relaxed_at IS NULL;
	EXCEPTION WHEN undefined_table OR undefined_column THEN
		RETURN;
	END;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	cond := CASE WHEN f.closed THEN ` + quoteLiteral(whenClosed) + `
		ELSE replace(` + quoteLiteral(whenOlder) + `, '%d', f.version::text) END;
	FOR r IN SELECT objid FROM pg_event_trigger_ddl_commands()
		WHERE object_type = 'table' AND schema_name NOT IN ('pgshard', 'pg_temp') LOOP
		EXECUTE format('CREATE OR REPLACE TRIGGER pgshard_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
			'FOR EACH STATEMENT WHEN (%s) EXECUTE FUNCTION pgshard.fence_check()', r.objid::regclass, cond);
	END LOOP;
END $f$;
DROP EVENT TRIGGER IF EXISTS pgshard_fence_new_tables;
CREATE EVENT TRIGGER pgshard_fence_new_tables ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
	EXECUTE FUNCTION pgshard.fence_new_table();`
}

// GuardNewTables makes a shard fence each table created while one of its
// fences holds, whoever installed that fence. Only a superuser can create
// the event trigger this needs: run it once per shard with a superuser's
// connection (InstallFence does it itself when its connection is a
// superuser's). owner, if not "", becomes the owner of the schema pgshard
// when GuardNewTables creates it, so that a fence installed by that role
// can use it. Without it, a table created after a fence is guarded by the
// routers' leases only: a router whose map is older than the fence stops
// writing to the shard when it next reads the fence, and at the latest
// when its lease ends.
func GuardNewTables(ctx context.Context, conn *pgx.Conn, owner string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if owner != "" {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS pgshard AUTHORIZATION "+pgx.Identifier{owner}.Sanitize()); err != nil {
				return fmt.Errorf("topology: guard new tables: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, guardNewTables()); err != nil {
			return fmt.Errorf("topology: guard new tables: %w", err)
		}
		return nil
	})
}
