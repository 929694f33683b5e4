package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgshard/pgshard/topology"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `usage: pgshard topology|schema|reshard COMMAND [flags] [args]

Commands:
  init                          create the store's schema in the control database
  show                          print the newest map
  history                       print the stored versions, newest first
  apply FILE                    store FILE's map (YAML) as the next version
  add-replica SHARD DSN         list DSN as a replica of SHARD
  remove-replica SHARD NODE     drop a replica (NODE: its DSN or host:port/database)
  set-primary SHARD NODE        make a replica the primary; the old primary becomes a replica
  set-state SHARD STATE         serving, or fenced (routers hold writes to SHARD)
  fences                        print each shard's fence: version, lease, triggers
  relax                         remove the triggers of the fences no router needs any more
  guard SUPERUSER-DSN           fence a shard's tables created after a fence (once per shard)

Run 'pgshard schema --help' and 'pgshard reshard --help' for the others,
and 'pgshard GROUP COMMAND --help' for a command's flags.
The control database: --control DSN, or $PGSHARD_CONTROL.
`

type env struct {
	out, errw io.Writer
	lookup    func(string) (string, bool)
}

func run(ctx context.Context, args []string, out, errw io.Writer, lookup func(string) (string, bool)) int {
	e := &env{out: out, errw: errw, lookup: lookup}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(out, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if g, ok := groups[args[0]]; ok {
		return g(ctx, e, args[1:])
	}
	if args[0] != "topology" {
		fmt.Fprintf(errw, "pgshard: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
	args = args[1:]
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(out, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, rest := args[0], args[1:]
	c, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(errw, "pgshard topology: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
	return c(ctx, e, cmd, rest)
}

// common are the flags every command takes.
type common struct {
	control string
	output  string
	fs      *flag.FlagSet
}

func newFlags(e *env, cmd, args, help string) *common {
	c := &common{fs: flag.NewFlagSet("pgshard topology "+cmd, flag.ContinueOnError)}
	c.fs.SetOutput(e.errw)
	c.fs.Usage = func() {
		fmt.Fprintf(e.out, "usage: pgshard topology %s [flags] %s\n\n%s\n\nFlags:\n", cmd, args, help)
		c.fs.SetOutput(e.out)
		c.fs.PrintDefaults()
		c.fs.SetOutput(e.errw)
	}
	c.fs.StringVar(&c.control, "control", "", "DSN of the control database (default $PGSHARD_CONTROL)")
	c.fs.StringVar(&c.output, "o", "text", "output format: text, json or yaml")
	return c
}

// parse reads the flags and checks the number of arguments; ok false
// means the command is done, with code.
func (c *common) parse(e *env, args []string, nargs int) (rest []string, code int, ok bool) {
	// Flags may come before, between or after the arguments.
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		if c.fs.NArg() == 0 {
			break
		}
		rest = append(rest, c.fs.Arg(0))
		args = c.fs.Args()[1:]
	}
	if nargs >= 0 && len(rest) != nargs || nargs < 0 && len(rest) > 1 {
		fmt.Fprintf(e.errw, "%s: want %d argument(s), got %d\n", c.fs.Name(), max(nargs, 1), len(rest))
		c.fs.Usage()
		return nil, exitUsage, false
	}
	switch c.output {
	case "text", "json", "yaml":
	default:
		fmt.Fprintf(e.errw, "%s: -o %q: want text, json or yaml\n", c.fs.Name(), c.output)
		return nil, exitUsage, false
	}
	return rest, exitOK, true
}

func (c *common) open(ctx context.Context, e *env) (*topology.Store, error) {
	dsn := c.control
	if dsn == "" {
		dsn, _ = e.lookup("PGSHARD_CONTROL")
	}
	if dsn == "" {
		return nil, errors.New("no control database: give --control DSN or set PGSHARD_CONTROL")
	}
	return topology.Open(ctx, dsn)
}

func (e *env) fail(name string, err error) int {
	fmt.Fprintf(e.errw, "%s: %v\n", name, err)
	return exitFail
}

var commands = map[string]func(ctx context.Context, e *env, cmd string, args []string) int{
	"init":           cmdInit,
	"show":           cmdShow,
	"history":        cmdHistory,
	"apply":          cmdApply,
	"add-replica":    cmdEdit,
	"remove-replica": cmdEdit,
	"set-primary":    cmdEdit,
	"set-state":      cmdEdit,
	"fences":         cmdFences,
	"relax":          cmdRelax,
	"guard":          cmdGuard,
}

func cmdInit(ctx context.Context, e *env, cmd string, args []string) int {
	c := newFlags(e, cmd, "", "Create the schema pgshard and its tables in the control database. Running it again changes nothing.")
	if _, code, ok := c.parse(e, args, 0); !ok {
		return code
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	if err := s.Init(ctx); err != nil {
		return e.fail(c.fs.Name(), err)
	}
	fmt.Fprintln(e.out, "topology store ready")
	return exitOK
}

func cmdShow(ctx context.Context, e *env, cmd string, args []string) int {
	c := newFlags(e, cmd, "", "Print the newest map (or --version N).")
	version := c.fs.Int64("version", 0, "print this version instead of the newest")
	if _, code, ok := c.parse(e, args, 0); !ok {
		return code
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	var m *topology.Map
	if *version != 0 {
		m, err = s.Version(ctx, *version)
	} else {
		m, err = s.Current(ctx)
	}
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	return e.print(c, m, func(w io.Writer) { printMap(w, m) })
}

func cmdHistory(ctx context.Context, e *env, cmd string, args []string) int {
	c := newFlags(e, cmd, "", "Print the stored versions, newest first: who changed the map, when and why.")
	n := c.fs.Int("n", 20, "at most this many versions (0: all)")
	if _, code, ok := c.parse(e, args, 0); !ok {
		return code
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	hist, err := s.History(ctx, *n)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	return e.print(c, hist, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tCHANGED\tBY\tDB USER\tSHARDS\tREASON")
		for _, m := range hist {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", m.Version, m.ChangedAt.UTC().Format(time.RFC3339), m.ChangedBy, m.DBUser, len(m.Shards), m.Reason)
		}
		tw.Flush()
	})
}

// changeFlags are the flags of every command that stores a version.
type changeFlags struct {
	dryRun      bool
	reason, by  string
	lockTimeout time.Duration
	lease       time.Duration
}

func addChangeFlags(c *common) *changeFlags {
	f := &changeFlags{}
	c.fs.BoolVar(&f.dryRun, "dry-run", false, "validate and print the plan; store nothing, fence nothing")
	c.fs.StringVar(&f.reason, "reason", "", "why (stored with the version)")
	c.fs.StringVar(&f.by, "by", "", "who asks (default user@host)")
	c.fs.DurationVar(&f.lockTimeout, "lock-timeout", 5*time.Second, "how long a fence waits for the writes in flight on its shard")
	c.fs.DurationVar(&f.lease, "lease", topology.DefaultLease, "how long a router may write to a fenced shard after it last read the fence (its triggers go twice this long after it)")
	return f
}

func (f *changeFlags) options(expect int64, lookup func(string) (string, bool)) topology.ApplyOptions {
	return topology.ApplyOptions{By: f.by, Reason: f.reason, DryRun: f.dryRun, Expect: expect, LockTimeout: f.lockTimeout, Lease: f.lease, Lookup: lookup}
}

func cmdApply(ctx context.Context, e *env, cmd string, args []string) int {
	c := newFlags(e, cmd, "FILE", "Store FILE's map (YAML: shards with name, range, primary, replicas, state) as the next version.\n"+
		"Shards that lose a range, leave the map or change state are fenced first. Use - for standard input.")
	cf := addChangeFlags(c)
	expect := c.fs.Int64("expect", 0, "fail unless the newest version is this one (0: any)")
	rest, code, ok := c.parse(e, args, 1)
	if !ok {
		return code
	}
	var data []byte
	var err error
	if rest[0] == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(rest[0])
	}
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	m, err := topology.ParseFile(rest[0], data)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	plan, err := s.Apply(ctx, m, cf.options(*expect, e.lookup))
	return e.applied(c, plan, err)
}

func cmdEdit(ctx context.Context, e *env, cmd string, args []string) int {
	helps := map[string][2]string{
		"add-replica":    {"SHARD DSN", "List DSN as a streaming replica of SHARD."},
		"remove-replica": {"SHARD NODE", "Drop a replica of SHARD; NODE is its DSN as stored or its host:port/database."},
		"set-primary":    {"SHARD NODE", "Record a switchover: the replica NODE becomes SHARD's primary and the old primary a replica.\nPromote the server yourself (fence the shard first with set-state fenced for no lost writes)."},
		"set-state":      {"SHARD STATE", "Set SHARD's state: serving, or fenced (its primary refuses routers' writes; they wait)."},
	}
	h := helps[cmd]
	c := newFlags(e, cmd, h[0], h[1])
	cf := addChangeFlags(c)
	rest, code, ok := c.parse(e, args, 2)
	if !ok {
		return code
	}
	s, err := c.open(ctx, e)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	defer s.Close()
	cur, err := s.Current(ctx)
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	m := cur.Clone()
	switch cmd {
	case "add-replica":
		err = m.AddReplica(rest[0], rest[1])
	case "remove-replica":
		err = m.RemoveReplica(rest[0], rest[1])
	case "set-primary":
		err = m.SetPrimary(rest[0], rest[1])
	case "set-state":
		st := topology.State(rest[1])
		if st != topology.StateServing && st != topology.StateFenced {
			fmt.Fprintf(e.errw, "%s: state %q: want serving or fenced\n", c.fs.Name(), rest[1])
			return exitUsage
		}
		err = m.SetState(rest[0], st)
	}
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	if cf.reason == "" {
		cf.reason = strings.Join(append([]string{cmd}, rest[0]), " ")
	}
	plan, err := s.Apply(ctx, m, cf.options(cur.Version, e.lookup))
	return e.applied(c, plan, err)
}

func (e *env) applied(c *common, plan *topology.Plan, err error) int {
	if err != nil {
		return e.fail(c.fs.Name(), err)
	}
	dry := ""
	if c.fs.Lookup("dry-run").Value.String() == "true" {
		dry = " (dry run: nothing stored)"
	}
	return e.print(c, plan, func(w io.Writer) {
		for _, f := range plan.Fences {
			what := "range " + f.Range
			switch {
			case f.Closed:
				what = "all writes"
			case f.Range == "":
				what = "no range"
			}
			fmt.Fprintf(w, "fence shard %s at version %d: serves %s\n", f.Shard, f.Version, what)
		}
		fmt.Fprintf(w, "version %d%s\n", plan.To.Version, dry)
		printMap(w, plan.To)
	})
}

func (e *env) print(c *common, v any, text func(io.Writer)) int {
	switch c.output {
	case "json":
		enc := json.NewEncoder(e.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return e.fail(c.fs.Name(), err)
		}
	case "yaml":
		m, ok := v.(*topology.Map)
		if !ok {
			if p, isPlan := v.(*topology.Plan); isPlan {
				m, ok = p.To, true
			}
		}
		if !ok {
			fmt.Fprintf(e.errw, "%s: -o yaml prints a map; use json\n", c.fs.Name())
			return exitUsage
		}
		b, err := topology.MarshalFile(m)
		if err != nil {
			return e.fail(c.fs.Name(), err)
		}
		e.out.Write(b)
	default:
		text(e.out)
	}
	return exitOK
}

func printMap(w io.Writer, m *topology.Map) {
	fmt.Fprintf(w, "version %d, changed %s by %s: %s\n", m.Version, m.ChangedAt.UTC().Format(time.RFC3339), m.ChangedBy, m.Reason)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tRANGE\tSTATE\tPRIMARY\tREPLICAS")
	for _, sh := range m.Shards {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", sh.Name, sh.Range, sh.State, sh.Primary, strings.Join(sh.Replicas, ", "))
	}
	tw.Flush()
}
