package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/topology"
)

const reshardUsage = `usage: pgshard reshard COMMAND [flags] NAME

Commands:
  create NAME --source RANGE --target RANGE=DSN ...
                       check, then copy the declared tables to the targets and stream changes (until ^C)
  run NAME             resume a workflow where it stopped (copy again if interrupted, then stream)
  status NAME          phase, rows copied, lag, warnings (no NAME: every workflow)
  verify NAME          compare the source's rows with the targets' at one position (the stream must run)
  switch-writes NAME   fence the source, wait for the targets, publish the map that gives them the range
  reverse NAME         after the switch: fence the targets, let the source catch up, give it its range back
  complete NAME        after the switch: drop the slots and the publications; the source is retired
  cancel NAME          before the switch: drop the slot and the publication, empty the targets

The workflow's state is kept in the control database (--control DSN, or $PGSHARD_CONTROL).
The declared tables (pgshard schema add-table) are the ones moved.
`

var reshardCommands = map[string]command{
	"create": cmdReshardCreate,
	"run":    cmdReshardRun,
	"status": cmdReshardStatus,
	"cancel": cmdReshardCancel,
	"verify": cmdReshardVerify,

	"switch-writes": cmdReshardSwitch,
	"complete":      cmdReshardComplete,
	"reverse":       cmdReshardReverse,
}

// targetsFlag collects --target RANGE=DSN or NAME:RANGE=DSN.
type targetsFlag []reshard.Target

func (f *targetsFlag) String() string { return fmt.Sprint(len(*f)) }

func (f *targetsFlag) Set(s string) error {
	r, dsn, ok := strings.Cut(s, "=")
	if !ok || r == "" || dsn == "" {
		return errors.New("want RANGE=DSN or NAME:RANGE=DSN, such as 80-c0=postgres://app:${PW}@10.0.0.5/app")
	}
	t := reshard.Target{Range: r, Primary: dsn}
	if name, rg, ok := strings.Cut(r, ":"); ok {
		t.Name, t.Range = name, rg
	}
	*f = append(*f, t)
	return nil
}

func (e *env) manager(ctx context.Context, c *common, verbose bool) (*reshard.Manager, *topology.Store, error) {
	s, err := c.open(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	o := reshard.Options{Lookup: e.lookup}
	if verbose {
		o.Logger = slog.New(slog.NewTextHandler(e.errw, nil))
	}
	return reshard.New(s, o), s, nil
}

// withManager parses a subcommand's arguments (want of them, as parse
// takes it), opens the control store and a workflow manager on it (logging
// to stderr when verbose), runs fn and returns its exit status.
func (e *env) withManager(ctx context.Context, c *common, args []string, want int, verbose bool, fn func(m *reshard.Manager, rest []string) int) int {
	rest, code, ok := c.parse(e, args, want)
	if !ok {
		return code
	}
	m, s, err := e.manager(ctx, c, verbose)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	return fn(m, rest)
}

func cmdReshardCreate(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "reshard", cmd, "NAME", "Check the source and the targets, copy the schema to targets that have none and record\n"+
		"the workflow; then copy the declared tables and stream changes until interrupted (resume with run).")
	source := c.fs.String("source", "", "the range of the shard to split, as the map has it (80-)")
	var targets targetsFlag
	c.fs.Var(&targets, "target", "RANGE=DSN (or NAME:RANGE=DSN) of a target; repeat: their ranges cover the source's")
	noRun := c.fs.Bool("no-run", false, "record the workflow and return: copy and stream later with run")
	rest, code, ok := c.parse(e, args, 1)
	if !ok {
		return code
	}
	if *source == "" || len(targets) == 0 {
		fmt.Fprintf(e.errw, "%s: give --source RANGE and at least one --target RANGE=DSN\n", c.fs.Name())
		return exitUsage
	}
	m, s, err := e.manager(ctx, c, true)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	st, err := m.Create(ctx, reshard.Spec{Name: rest[0], Source: *source, Targets: targets})
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	fmt.Fprintf(e.out, "workflow %s created: %s (shard %s) to %s\n", st.Name, st.Source.Range, st.Source.Shard, targetNames(st))
	if *noRun {
		return exitOK
	}
	return runWorkflow(ctx, e, c, m, st.Name)
}

func targetNames(st *reshard.State) string {
	var names []string
	for _, t := range st.Targets {
		names = append(names, t.Name+" ("+t.Range+")")
	}
	return strings.Join(names, ", ")
}

func runWorkflow(ctx context.Context, e *env, c *common, m *reshard.Manager, name string) int {
	fmt.Fprintf(e.out, "workflow %s: copying and streaming; ^C stops (resume with 'pgshard reshard run %s')\n", name, name)
	err := m.Run(ctx, name)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(e.out, "workflow %s: stopped\n", name)
		return exitOK
	}
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	st, err := m.Get(context.WithoutCancel(ctx), name)
	if err == nil {
		fmt.Fprintf(e.out, "workflow %s: %s\n", name, st.Phase)
	}
	return exitOK
}

func cmdReshardRun(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "reshard", cmd, "NAME", "Resume the workflow: copy (again, if a copy was interrupted), then stream changes\n"+
		"to the targets until interrupted, completed or cancelled.")
	return e.withManager(ctx, c, args, 1, true, func(m *reshard.Manager, rest []string) int {
		return runWorkflow(ctx, e, c, m, rest[0])
	})
}

func cmdReshardStatus(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "reshard", cmd, "[NAME]", "Print the workflow's phase, rows copied per table, streaming lag and warnings\n"+
		"(a slot that holds back more than 1 GiB of WAL, a stream that no process runs). Without NAME, every workflow.")
	return e.withManager(ctx, c, args, -1, false, func(m *reshard.Manager, rest []string) int {
		names := rest
		if len(names) == 0 {
			var err error
			if names, err = m.List(ctx); err != nil {
				return e.fail(c.fs.Name(), err)
			}
		}
		all := []*reshard.Status{}
		for _, n := range names {
			st, err := m.Status(ctx, n)
			if err != nil {
				return e.fail(c.fs.Name(), err)
			}
			all = append(all, st)
		}
		var v any = all
		if len(rest) == 1 {
			v = all[0]
		}
		return e.print(c, v, func(w io.Writer) {
			for _, st := range all {
				printStatus(w, st)
			}
		})
	})
}

func printStatus(w io.Writer, st *reshard.Status) {
	fmt.Fprintf(w, "workflow %s: %s\n", st.Name, st.Phase)
	fmt.Fprintf(w, "  source   %s (shard %s, map version %d)\n", st.Source.Range, st.Source.Shard, st.MapVersion)
	for _, t := range st.Targets {
		fmt.Fprintf(w, "  target   %s (%s) applied %s\n", t.Name, t.Range, st.Applied[t.Name])
	}
	if len(st.Copied) > 0 {
		tables := make([]string, 0, len(st.Copied))
		for t := range st.Copied {
			tables = append(tables, t)
		}
		slices.Sort(tables)
		var parts []string
		for _, t := range tables {
			parts = append(parts, fmt.Sprintf("%s %d", t, st.Copied[t]))
		}
		fmt.Fprintf(w, "  copied   %s rows in %v (attempt %d)\n", strings.Join(parts, ", "), st.CopyTime.Round(time.Millisecond), st.CopyAttempts)
	}
	if st.SlotExists {
		fmt.Fprintf(w, "  slot     %s, active %t, lag %d bytes, %.1f s, holds %d KiB of WAL\n", st.Slot, st.SlotActive, st.LagBytes, st.LagSeconds, st.RetainedBytes>>10)
	}
	if st.SwitchedVersion != 0 {
		rev := "reverse replication from the targets runs (reverse can undo the switch)"
		if !st.Reverse {
			rev = "no reverse replication: " + st.ReverseError
		}
		fmt.Fprintf(w, "  switched at map version %d; %s\n", st.SwitchedVersion, rev)
	}
	if st.ReversedVersion != 0 {
		fmt.Fprintf(w, "  reversed at map version %d: the source owns its range again\n", st.ReversedVersion)
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "  WARNING  %s\n", warn)
	}
}

func cmdReshardCancel(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "reshard", cmd, "NAME", "Abandon the workflow before its switch: drop the slot and the publication on the source\n"+
		"and empty the targets' declared tables.")
	return e.withManager(ctx, c, args, 1, false, func(m *reshard.Manager, rest []string) int {
		if _, err := m.Cancel(ctx, rest[0]); err != nil {
			return e.fail(c.fs.Name(), err)
		}
		fmt.Fprintf(e.out, "workflow %s cancelled: slot and publication dropped, targets emptied\n", rest[0])
		return exitOK
	})
}

func cmdReshardVerify(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "reshard", cmd, "NAME", "Compare the source's rows (of each target's range) with the targets' at one position of\n"+
		"the source: row counts and each row's md5 in primary-key order, naming the first keys that differ.\n"+
		"The stream ('pgshard reshard run') must be running: it pauses for the comparison. Exit status 1 on a difference.")
	timeout := c.fs.Duration("timeout", 30*time.Second, "how long to wait for the stream to pause and reach the position")
	maxDiffs := c.fs.Int("max-diffs", 10, "name at most this many differences")
	return e.withManager(ctx, c, args, 1, false, func(m *reshard.Manager, rest []string) int {
		rep, err := m.Verify(ctx, rest[0], reshard.VerifyOptions{Timeout: *timeout, MaxDiffs: *maxDiffs})
		if err != nil {
			return e.fail(c.fs.Name(), err)
		}
		code := e.print(c, rep, func(w io.Writer) {
			fmt.Fprintf(w, "compared at source position %s\n", rep.Position)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TABLE\tTARGET\tSOURCE ROWS\tTARGET ROWS")
			for _, tc := range rep.Tables {
				for _, t := range slices.Sorted(maps.Keys(tc.Targets)) {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", tc.Table, t, tc.Source[t], tc.Targets[t])
				}
			}
			tw.Flush()
			for _, d := range rep.Diffs {
				fmt.Fprintf(w, "DIFF %s on %s at key %s: %s\n", d.Table, d.Target, d.Key, d.Problem)
			}
			if rep.More > 0 {
				fmt.Fprintf(w, "and %d more differences\n", rep.More)
			}
			if rep.Clean() {
				fmt.Fprintln(w, "clean: the targets hold exactly the source's rows")
			}
		})
		if code == exitOK && !rep.Clean() {
			return exitFail
		}
		return code
	})
}

func cmdReshardSwitch(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "reshard", cmd, "NAME", "Move the writes of the source's range to the targets: check the lag, fence the source (routers\n"+
		"hold the writes it refuses), wait until the targets have applied the source's position at the fence, and\n"+
		"publish the map version in which the targets own the range. On timeout before that point the source is\n"+
		"unfenced and nothing is lost. The stream ('pgshard reshard run') must be running.")
	maxLag := c.fs.Duration("max-lag", time.Second, "the targets must catch up with the source within this before the fence")
	timeout := c.fs.Duration("timeout", 10*time.Second, "from the fence to the point of no return, at most")
	reason := c.fs.String("reason", "", "why (stored with the map version; default reshard NAME)")
	by := c.fs.String("by", "", "who asks (default user@host)")
	return e.withManager(ctx, c, args, 1, true, func(m *reshard.Manager, rest []string) int {
		began := time.Now()
		st, err := m.SwitchWrites(ctx, rest[0], reshard.SwitchOptions{MaxLag: *maxLag, Timeout: *timeout, Reason: *reason, By: *by})
		if err != nil {
			return e.fail(c.fs.Name(), err)
		}
		return e.print(c, st, func(w io.Writer) {
			fmt.Fprintf(w, "workflow %s switched in %v: map version %d gives %s to %s\n", st.Name, time.Since(began).Round(time.Millisecond),
				st.SwitchedVersion, st.Source.Range, targetNames(st))
		})
	})
}

func cmdReshardComplete(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "reshard", cmd, "NAME", "End a switched workflow: drop the slot, the publication and the TRUNCATE guards on the source,\n"+
		"which is retired (its rows stay; its fence refuses every router's writes).")
	return e.withManager(ctx, c, args, 1, false, func(m *reshard.Manager, rest []string) int {
		if _, err := m.Complete(ctx, rest[0]); err != nil {
			return e.fail(c.fs.Name(), err)
		}
		fmt.Fprintf(e.out, "workflow %s completed: slot and publication dropped, source retired\n", rest[0])
		return exitOK
	})
}

func cmdReshardReverse(ctx context.Context, e *env, cmd string, args []string) int {
	c := newGroupFlags(e, "reshard", cmd, "NAME", "Undo a switch: fence the targets (routers hold the writes they refuse), wait until the source has\n"+
		"applied everything the targets took (the reverse streams of 'pgshard reshard run'), and publish the map\n"+
		"version in which the source owns its range again. On timeout the targets are unfenced, nothing lost.")
	timeout := c.fs.Duration("timeout", 10*time.Second, "from the targets' fence to the new map, at most")
	reason := c.fs.String("reason", "", "why (stored with the map version)")
	by := c.fs.String("by", "", "who asks (default user@host)")
	return e.withManager(ctx, c, args, 1, true, func(m *reshard.Manager, rest []string) int {
		st, err := m.Reverse(ctx, rest[0], reshard.ReverseOptions{Timeout: *timeout, Reason: *reason, By: *by})
		if err != nil {
			return e.fail(c.fs.Name(), err)
		}
		return e.print(c, st, func(w io.Writer) {
			fmt.Fprintf(w, "workflow %s reversed: map version %d gives %s back to shard %s; cancel drops the rest and empties the targets\n",
				st.Name, st.ReversedVersion, st.Source.Range, st.Source.Shard)
		})
	})
}
