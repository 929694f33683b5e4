package reshard

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// Spec asks for a workflow.
type Spec struct {
	// Name names the workflow, its slot and its publication: 1 to 40
	// lower-case letters, digits and '_'.
	Name string
	// Source is the range of the shard to split, as the newest map
	// writes it ("80-").
	Source string
	// Targets take the source's range between them: their ranges cover
	// it exactly, with no gap and no overlap.
	Targets []Target
}

var nameRE = regexp.MustCompile(`^[a-z0-9_]{1,40}$`)

// Create checks spec against the newest map, the declared tables, the
// source and the targets, copies the schema to targets that have none,
// and records the workflow (phase created). It makes nothing on the
// source: Run does. Every reason to refuse wraps ErrPreflight and names
// the shard and table at fault.
func (m *Manager) Create(ctx context.Context, spec Spec) (*State, error) {
	st, err := m.plan(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := m.preflight(ctx, st); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	st.Phase, st.CreatedAt, st.UpdatedAt = PhaseCreated, now, now
	if _, err := m.store.PutWorkflow(ctx, st.Name, workflowKind, 0, st); err != nil {
		if errors.Is(err, topology.ErrConflict) {
			return nil, fmt.Errorf("%w: a workflow named %s exists already", ErrPreflight, st.Name)
		}
		return nil, err
	}
	return st, nil
}

func preflightf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrPreflight}, args...)...)
}

// plan builds the workflow's state from spec and the newest map.
func (m *Manager) plan(ctx context.Context, spec Spec) (*State, error) {
	if !nameRE.MatchString(spec.Name) {
		return nil, preflightf("workflow name %q: want 1 to 40 lower-case letters, digits or '_'", spec.Name)
	}
	src, err := shard.ParseRange(spec.Source)
	if err != nil {
		return nil, preflightf("source: %v", err)
	}
	cur, err := m.store.Current(ctx)
	if err != nil {
		return nil, err
	}
	st := &State{Name: spec.Name, MapVersion: cur.Version,
		Slot: "pgshard_reshard_" + spec.Name, Publication: "pgshard_reshard_" + spec.Name}
	for _, sh := range cur.Shards {
		if r, err := shard.ParseRange(sh.Range); err == nil && r == src {
			st.Source = Source{Shard: sh.Name, Range: r.String(), Primary: sh.Primary, Replicas: sh.Replicas}
		}
	}
	if st.Source.Shard == "" {
		return nil, preflightf("no shard of map version %d has the range %s", cur.Version, spec.Source)
	}
	if len(spec.Targets) < 1 {
		return nil, preflightf("no targets")
	}
	// The map the switch will publish must be valid: the targets' ranges
	// tile the source's, their names and nodes are new, no literal password.
	next := cur.Clone()
	next.Shards = slices.DeleteFunc(next.Shards, func(s topology.Shard) bool { return s.Name == st.Source.Shard })
	for _, t := range spec.Targets {
		r, err := shard.ParseRange(t.Range)
		if err != nil {
			return nil, preflightf("target: %v", err)
		}
		if !within(r, src) {
			return nil, preflightf("target range %s is not inside the source's range %s", t.Range, st.Source.Range)
		}
		t.Range = r.String()
		if t.Name == "" {
			t.Name = t.Range
		}
		st.Targets = append(st.Targets, t)
		next.Shards = append(next.Shards, topology.Shard{Name: t.Name, Range: t.Range, Primary: t.Primary, Replicas: t.Replicas})
	}
	if err := next.Validate(); err != nil {
		return nil, preflightf("the map after the switch: %v", err)
	}
	st.Tables, err = m.store.Tables(ctx)
	if err != nil {
		return nil, err
	}
	if len(st.Tables) == 0 {
		return nil, preflightf("no declared tables: declare them first (pgshard schema add-table)")
	}
	return st, nil
}

// within reports whether r lies inside outer.
func within(r, outer shard.Range) bool {
	end := func(x shard.Range) uint64 {
		if x.End == 0 {
			return ^uint64(0)
		}
		return uint64(x.End) - 1
	}
	return r.Start >= outer.Start && end(r) <= end(outer)
}

// preflight checks the source and the targets.
func (m *Manager) preflight(ctx context.Context, st *State) error {
	var srcCols map[string]tableShape
	err := m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		var level string
		var canReplicate bool
		if err := c.QueryRow(ctx, `SELECT current_setting('wal_level'),
			(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)`).Scan(&level, &canReplicate); err != nil {
			return err
		}
		if level != "logical" {
			return preflightf("source %s: wal_level is %s: set wal_level = logical and restart it", st.Source.Shard, level)
		}
		if !canReplicate {
			return preflightf("source %s: the role of its DSN may not replicate: give it REPLICATION", st.Source.Shard)
		}
		for i, t := range st.Tables {
			kind, err := topology.CheckTable(ctx, c, t)
			if err != nil {
				return preflightf("source %s: %v", st.Source.Shard, err)
			}
			st.Tables[i].KeyKind = kind
		}
		var err error
		srcCols, err = shapes(ctx, c, st.Tables)
		return err
	})
	if err != nil {
		return err
	}
	for _, t := range st.Targets {
		err := m.withConn(ctx, "target "+t.Name, t.Primary, func(c *pgx.Conn) error {
			got, err := shapes(ctx, c, st.Tables)
			if err != nil {
				return err
			}
			if len(got) == 0 {
				if err := m.copySchema(ctx, st, c); err != nil {
					return preflightf("target %s: copy the schema: %v", t.Name, err)
				}
				if got, err = shapes(ctx, c, st.Tables); err != nil {
					return err
				}
			}
			for _, tb := range st.Tables {
				want, have := srcCols[tb.Name], got[tb.Name]
				if have.columns == "" {
					return preflightf("target %s: no table %s (it has some of the declared tables: give it all or none)", t.Name, tb.Name)
				}
				if want != have {
					return preflightf("target %s: table %s differs from the source's:\n  source: %s\n  target: %s", t.Name, tb.Name, want, have)
				}
				var rows bool
				if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+quoteTable(tb.Name)+")").Scan(&rows); err != nil {
					return err
				}
				if rows {
					return preflightf("target %s: table %s has rows: a target must be empty", t.Name, tb.Name)
				}
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrPreflight) {
				return err
			}
			return preflightf("target %s: %v", t.Name, err)
		}
	}
	return nil
}

// tableShape is what must match between the source and a target: the
// columns (name and type, in order) and the primary key.
type tableShape struct{ columns, pk string }

func (s tableShape) String() string { return "columns (" + s.columns + "), primary key (" + s.pk + ")" }

// shapes reads the shape of each declared table that exists.
func shapes(ctx context.Context, c *pgx.Conn, tables []topology.Table) (map[string]tableShape, error) {
	out := map[string]tableShape{}
	for _, t := range tables {
		var cols, pk *string
		err := c.QueryRow(ctx, `SELECT
			(SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
				FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped),
			(SELECT string_agg(a.attname::text, ', ' ORDER BY k.ord) FROM pg_index i
				CROSS JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
				WHERE i.indrelid = to_regclass($1) AND i.indisprimary)`, t.Name).Scan(&cols, &pk)
		if err != nil {
			return nil, err
		}
		if cols == nil {
			continue
		}
		s := tableShape{columns: *cols}
		if pk != nil {
			s.pk = *pk
		}
		out[t.Name] = s
	}
	return out, nil
}

// quoteTable quotes a table name that may be schema-qualified.
func quoteTable(name string) string { return pgx.Identifier(strings.Split(name, ".")).Sanitize() }
