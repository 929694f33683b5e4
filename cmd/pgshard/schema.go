package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/pgshard/pgshard/topology"
)

const schemaUsage = `usage: pgshard schema COMMAND [flags] [args]

Commands:
  add-table TABLE --key COLUMN  declare a sharded table: COLUMN (part of its primary key) places each row
  add-table TABLE --reference   declare a reference table, copied whole to every shard
  remove-table TABLE            forget a declared table
  tables                        list the declared tables

The declarations are kept in the control database (--control DSN, or $PGSHARD_CONTROL)
and checked against every shard's primary of the newest map.
`

var schemaCommands = map[string]command{
	"add-table":    cmdAddTable,
	"remove-table": cmdRemoveTable,
	"tables":       cmdTables,
}

func cmdAddTable(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "schema", cmd, "TABLE", "Declare TABLE: sharded by --key COLUMN (a column of its primary key), or --reference.\n"+
		"The table is checked on every shard's primary of the newest map.")
	key := c.fs.String("key", "", "the column whose xxhash64 places each row (part of the primary key)")
	ref := c.fs.Bool("reference", false, "a reference table: copied whole to every shard")
	rest, code, ok := c.parse(e, args, 1)
	if !ok {
		return code
	}
	if (*key == "") == !*ref {
		fmt.Fprintf(e.errw, "%s: give either --key COLUMN or --reference\n", c.fs.Name())
		return exitUsage
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	t, err := s.AddTable(ctx, topology.Table{Name: rest[0], Key: *key, Reference: *ref}, topology.TableOptions{Lookup: e.lookup})
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	return e.print(c, t, func(w io.Writer) {
		if t.Reference {
			fmt.Fprintf(w, "table %s declared: reference (copied whole to every shard)\n", t.Name)
			return
		}
		fmt.Fprintf(w, "table %s declared: sharded by %s (%s)\n", t.Name, t.Key, t.KeyKind)
	})
}

func cmdRemoveTable(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "schema", cmd, "TABLE", "Forget a declared table; its data stays where it is.")
	rest, code, ok := c.parse(e, args, 1)
	if !ok {
		return code
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	removed, err := s.RemoveTable(ctx, rest[0])
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	if !removed {
		return e.fail(c.fs.Name(), fmt.Errorf("table %q is not declared", rest[0]))
	}
	fmt.Fprintf(e.out, "table %s removed\n", rest[0])
	return exitOK
}

func cmdTables(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "schema", cmd, "", "List the declared tables.")
	if _, code, ok := c.parse(e, args, 0); !ok {
		return code
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	tables, err := s.Tables(ctx)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	if tables == nil {
		tables = []topology.Table{}
	}
	return e.print(c, tables, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tKIND\tKEY\tADDED")
		for _, t := range tables {
			kind, key := "sharded", t.Key+" ("+t.KeyKind+")"
			if t.Reference {
				kind, key = "reference", "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, kind, key, t.AddedAt.UTC().Format(time.RFC3339))
		}
		tw.Flush()
	})
}
