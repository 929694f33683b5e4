package topology

// controlSchema creates the store's tables in the control database. Rows
// are only ever inserted: triggers refuse UPDATE and DELETE, and a version
// that is not the last plus one.
const controlSchema = `
CREATE SCHEMA IF NOT EXISTS pgshard;
CREATE TABLE IF NOT EXISTS pgshard.maps (
	version    bigint PRIMARY KEY CHECK (version > 0),
	changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	changed_by text NOT NULL,
	db_user    text NOT NULL DEFAULT current_user,
	reason     text NOT NULL
);
CREATE TABLE IF NOT EXISTS pgshard.map_shards (
	version      bigint NOT NULL REFERENCES pgshard.maps,
	position     int NOT NULL,
	name         text NOT NULL,
	range        text NOT NULL,
	primary_dsn  text NOT NULL,
	replica_dsns text[] NOT NULL DEFAULT '{}',
	state        text NOT NULL CHECK (state IN ('serving', 'fenced')),
	PRIMARY KEY (version, name),
	UNIQUE (version, position)
);
CREATE OR REPLACE FUNCTION pgshard.maps_immutable() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	RAISE EXCEPTION 'pgshard: a stored map version is never changed: apply a new version';
END $f$;
CREATE OR REPLACE TRIGGER maps_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON pgshard.maps
	FOR EACH STATEMENT EXECUTE FUNCTION pgshard.maps_immutable();
CREATE OR REPLACE TRIGGER map_shards_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON pgshard.map_shards
	FOR EACH STATEMENT EXECUTE FUNCTION pgshard.maps_immutable();
CREATE OR REPLACE FUNCTION pgshard.maps_next() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
	last bigint := (SELECT coalesce(max(version), 0) FROM pgshard.maps);
BEGIN
	IF NEW.version <> last + 1 THEN
		RAISE EXCEPTION 'pgshard: map version % is not the next one (the last is %)', NEW.version, last;
	END IF;
	RETURN NEW;
END $f$;
CREATE OR REPLACE TRIGGER maps_next BEFORE INSERT ON pgshard.maps
	FOR EACH ROW EXECUTE FUNCTION pgshard.maps_next();
`

// Channel is the NOTIFY channel on which the store announces each new
// version; the payload is the version number.
const Channel = "pgshard_topology"
