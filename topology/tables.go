package topology

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Table is a declared table: one whose rows are placed by a key column
// (sharded), or copied whole to every shard (reference). The resharding
// tools move only declared tables.
type Table struct {
	// Name is the table's name as the shards resolve it ("posts", or
	// "app.posts" outside the search path).
	Name string `json:"name"`
	// Key is the column whose value places a row (its xxhash64 decides
	// the shard); "" for a reference table. It must be part of the
	// table's primary key, so that each change carries it.
	Key string `json:"key,omitempty"`
	// KeyKind says how the key is hashed: "int" (smallint, integer,
	// bigint: as an int64, shard.HashInt64), "text" (text, varchar:
	// shard.HashString) or "bytes" (bytea: shard.HashBytes); "" for a
	// reference table. Set by AddTable from the column's type.
	KeyKind string `json:"key_kind,omitempty"`
	// Reference marks a table copied whole to every shard.
	Reference bool `json:"reference,omitempty"`
	// AddedAt is when the table was declared (set by the store).
	AddedAt time.Time `json:"added_at"`
}

const tablesSchema = `
CREATE SCHEMA IF NOT EXISTS pgshard;
CREATE TABLE IF NOT EXISTS pgshard.tables (
	name      text PRIMARY KEY,
	key       text NOT NULL DEFAULT '',
	key_kind  text NOT NULL DEFAULT '',
	reference boolean NOT NULL,
	added_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
	CHECK (reference = (key = ''))
);`

// TableOptions tune AddTable. The zero value checks every shard of the
// newest map, expanding DSNs from the environment.
type TableOptions struct {
	// Lookup expands the variables of the shard DSNs. Default os.LookupEnv.
	Lookup func(string) (string, bool)
}

// AddTable declares t after checking it on the primary of every shard of
// the newest map: the table exists and has a primary key, and for a
// sharded table the key column exists, has a type the keyspace can hash,
// and is part of the primary key. Declaring a table again replaces its
// declaration. The error names the shard and what is wrong.
func (s *Store) AddTable(ctx context.Context, t Table, o TableOptions) (Table, error) {
	if o.Lookup == nil {
		o.Lookup = os.LookupEnv
	}
	t.Name = strings.TrimSpace(t.Name)
	t.Key = strings.TrimSpace(t.Key)
	switch {
	case t.Name == "":
		return t, errors.New("topology: add table: no table name")
	case t.Reference && t.Key != "":
		return t, fmt.Errorf("topology: add table %s: a reference table has no key column (got %q)", t.Name, t.Key)
	case !t.Reference && t.Key == "":
		return t, fmt.Errorf("topology: add table %s: name its key column, or declare it a reference table", t.Name)
	}
	m, err := s.Current(ctx)
	if err != nil {
		return t, err
	}
	for _, sh := range m.Shards {
		dsn, err := ExpandDSN(sh.Primary, o.Lookup)
		if err != nil {
			return t, fmt.Errorf("topology: add table %s: shard %s: %w", t.Name, sh.Name, err)
		}
		err = withConn(ctx, dsn, func(c *pgx.Conn) error {
			kind, err := CheckTable(ctx, c, t)
			t.KeyKind = kind
			return err
		})
		if err != nil {
			return t, fmt.Errorf("topology: add table %s: shard %s: %w", t.Name, sh.Name, err)
		}
	}
	if _, err := s.pool.Exec(ctx, tablesSchema); err != nil {
		return t, storeError(err, -1)
	}
	err = s.pool.QueryRow(ctx, `INSERT INTO pgshard.tables (name, key, key_kind, reference) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET key = $2, key_kind = $3, reference = $4, added_at = clock_timestamp()
		RETURNING added_at`, t.Name, t.Key, t.KeyKind, t.Reference).Scan(&t.AddedAt)
	if err != nil {
		return t, storeError(err, -1)
	}
	return t, nil
}

// RemoveTable forgets a declared table; false when it was not declared.
func (s *Store) RemoveTable(ctx context.Context, name string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pgshard.tables WHERE name = $1`, name)
	if err != nil {
		if errors.Is(storeError(err, -1), ErrNotInitialized) {
			return false, nil
		}
		return false, storeError(err, -1)
	}
	return tag.RowsAffected() > 0, nil
}

// Tables returns the declared tables by name; none before the first
// AddTable.
func (s *Store) Tables(ctx context.Context) ([]Table, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, key, key_kind, reference, added_at FROM pgshard.tables ORDER BY name`)
	if err != nil {
		if errors.Is(storeError(err, -1), ErrNotInitialized) {
			return nil, nil
		}
		return nil, storeError(err, -1)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Table, error) {
		var t Table
		err := r.Scan(&t.Name, &t.Key, &t.KeyKind, &t.Reference, &t.AddedAt)
		return t, err
	})
}

// CheckTable checks t against the database conn is connected to, as
// AddTable does on each shard, and returns the key's kind ("" for a
// reference table).
func CheckTable(ctx context.Context, conn *pgx.Conn, t Table) (kind string, err error) {
	var (
		exists, hasPK bool
		pkCols        []string
	)
	err = conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL,
		coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
			CROSS JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE i.indrelid = to_regclass($1) AND i.indisprimary), '{}')`, t.Name).Scan(&exists, &pkCols)
	if err != nil {
		return "", err
	}
	hasPK = len(pkCols) > 0
	switch {
	case !exists:
		return "", fmt.Errorf("no table %q", t.Name)
	case !hasPK:
		return "", fmt.Errorf("table %s has no primary key: a moved table needs one to apply updates and deletes", t.Name)
	case t.Reference:
		return "", nil
	}
	var typ string
	err = conn.QueryRow(ctx, `SELECT a.atttypid::regtype::text FROM pg_attribute a
		WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, t.Name, t.Key).Scan(&typ)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("table %s has no column %q", t.Name, t.Key)
	}
	if err != nil {
		return "", err
	}
	kind = KeyKind(typ)
	if kind == "" {
		return "", fmt.Errorf("table %s: key column %s is of type %s: want smallint, integer, bigint, text, varchar or bytea", t.Name, t.Key, typ)
	}
	for _, c := range pkCols {
		if c == t.Key {
			return kind, nil
		}
	}
	return "", fmt.Errorf("table %s: key column %s is not part of the primary key (%s)", t.Name, t.Key, strings.Join(pkCols, ", "))
}

// KeyKind returns how a key column of the given type (as regtype prints
// it) is hashed: "int", "text" or "bytes"; "" for a type the keyspace
// does not hash.
func KeyKind(typ string) string {
	switch typ {
	case "smallint", "integer", "bigint":
		return "int"
	case "text", "character varying":
		return "text"
	case "bytea":
		return "bytes"
	}
	return ""
}
