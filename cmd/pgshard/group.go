package main

import (
	"context"
	"flag"
	"fmt"
)

// groups are the command groups besides topology, each with its own
// commands and usage.
var groups = map[string]func(ctx context.Context, e *env, args []string) int{
	"schema": func(ctx context.Context, e *env, args []string) int {
		return runGroup(ctx, e, "schema", schemaUsage, schemaCommands, args)
	},
	"reshard": func(ctx context.Context, e *env, args []string) int {
		return runGroup(ctx, e, "reshard", reshardUsage, reshardCommands, args)
	},
}

type command = func(ctx context.Context, e *env, cmd string, args []string) int

func runGroup(ctx context.Context, e *env, group, usage string, cmds map[string]command, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.out, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(e.errw, "pgshard %s: unknown command %q\n%s", group, args[0], usage)
		return exitUsage
	}
	return c(ctx, e, args[0], args[1:])
}

// newGroupFlags is newFlags for a command of another group.
func newGroupFlags(e *env, group, cmd, args, help string) *common {
	c := newFlags(e, cmd, args, help)
	name := "pgshard " + group + " " + cmd
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.errw)
	c.fs.VisitAll(func(f *flag.Flag) { fs.Var(f.Value, f.Name, f.Usage) })
	fs.Usage = func() {
		fmt.Fprintf(e.out, "usage: %s [flags] %s\n\n%s\n\nFlags:\n", name, args, help)
		fs.SetOutput(e.out)
		fs.PrintDefaults()
		fs.SetOutput(e.errw)
	}
	c.fs = fs
	return c
}
