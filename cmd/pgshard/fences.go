package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/topology"
)

func cmdFences(ctx context.Context, e *env, cmd string, args []string) int {
	c := newFlags(e, cmd, "", "Print each shard's fence as its primary records it: the map version it asks of routers,\n"+
		"the routers' lease, and when its triggers may be (or were) removed.")
	rest, code, ok := c.parse(e, args, 0)
	if !ok || len(rest) > 0 {
		return code
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	fences, err := s.Fences(ctx, e.lookup)
	return e.fences(c, fences, err)
}

func cmdRelax(ctx context.Context, e *env, cmd string, args []string) int {
	c := newFlags(e, cmd, "", "Remove the triggers of every shard's fence whose routers with an older map have all lost their lease.\n"+
		"Routers that follow the store do it themselves; this is for a role that owns the tables when theirs does not.")
	lockTimeout := c.fs.Duration("lock-timeout", 5*time.Second, "how long each shard waits for the transactions the relax must outlive")
	rest, code, ok := c.parse(e, args, 0)
	if !ok || len(rest) > 0 {
		return code
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	fences, err := s.Relax(ctx, topology.ApplyOptions{LockTimeout: *lockTimeout, Lookup: e.lookup})
	return e.fences(c, fences, err)
}

func cmdGuard(ctx context.Context, e *env, cmd string, args []string) int {
	c := newFlags(e, cmd, "SUPERUSER-DSN", "Make the shard whose primary SUPERUSER-DSN names fence the tables created while one of its fences holds,\n"+
		"whoever installs the fence (an event trigger: a superuser's to create). Run it once per shard.")
	owner := c.fs.String("owner", "", "the role that installs fences, made owner of the schema pgshard if this creates it")
	rest, code, ok := c.parse(e, args, 1)
	if !ok {
		return code
	}
	dsn, err := topology.ExpandDSN(rest[0], e.lookup)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return e.fail(c.fs.Name(), fmt.Errorf("connect: %w", err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := topology.GuardNewTables(ctx, conn, *owner); err != nil {
		return e.fail(c.fs.Name(), err)
	}
	fmt.Fprintln(e.out, "tables created while a fence holds are fenced")
	return exitOK
}

// fences prints shards' fences; a shard that could not be read makes the
// command fail once all are printed.
func (e *env) fences(c *common, fences []topology.ShardFence, err error) int {
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	if code := e.print(c, fences, func(w io.Writer) { printFences(w, fences) }); code != exitOK {
		return code
	}
	var failed []string
	for _, f := range fences {
		if f.Err != "" {
			failed = append(failed, f.Err)
		}
	}
	if len(failed) > 0 {
		return e.fail(c.fs.Name(), fmt.Errorf("%s", strings.Join(failed, "; ")))
	}
	return exitOK
}

func printFences(w io.Writer, fences []topology.ShardFence) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tVERSION\tSERVES\tLEASE\tTRIGGERS\tNEW TABLES")
	for _, f := range fences {
		if f.Err != "" || !f.Found {
			state := "none (never fenced)"
			if f.Err != "" {
				state = "unreadable"
			}
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t%s\n", f.Shard, state, newTables(f))
			continue
		}
		serves := f.Range
		switch {
		case f.Closed:
			serves = "nothing (fenced)"
		case serves == "":
			serves = "no range"
		}
		triggers := "until " + f.RelaxAfter.UTC().Format(time.RFC3339)
		switch {
		case f.Relaxed:
			triggers = "removed now"
		case !f.RelaxedAt.IsZero():
			triggers = "removed " + f.RelaxedAt.UTC().Format(time.RFC3339)
		case f.Closed:
			triggers = "until the shard is opened"
		case f.RelaxAfter.IsZero():
			triggers = "kept (fenced before leases)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", f.Shard, f.Version, serves, f.Lease, triggers, newTables(f))
	}
	tw.Flush()
}

func newTables(f topology.ShardFence) string {
	switch {
	case f.Err != "":
		return "-"
	case f.Guarded:
		return "fenced (guard)"
	}
	return "leases only (no guard)"
}
