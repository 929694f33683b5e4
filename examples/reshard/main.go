// Command reshard shows online resharding end to end: it starts a dev
// cluster of 2 shards (wal_level = logical) whose map is kept in a topology
// store, serves the reference server on it with loadgen writing and reading
// through it, adds 4 empty shards to the running cluster, and splits each
// half of the keyspace onto two of them with package reshard (copy under a
// slot's snapshot, streaming, verify, switch-writes, complete). It prints
// what happened and what the clients saw, and exits 1 if a request failed,
// an acknowledged write was lost, a read missed the client's own write, or
// verify found a difference.
//
//	go run ./examples/reshard      # make reshard-demo
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/pgshard/pgshard/examples/server/app"
	"github.com/pgshard/pgshard/internal/loadgen"
	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/topology"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	warm := flag.Duration("warm", 5*time.Second, "load before the split, and after it")
	clients := flag.Int("clients", 16, "loadgen's virtual clients")
	users := flag.Int("users", 500, "loadgen's user population (reached before the split)")
	flag.Parse()
	if err := run(ctx, os.Stdout, *warm, *clients, *users); err != nil {
		fmt.Fprintln(os.Stderr, "reshard demo:", err)
		os.Exit(1)
	}
}

// pwVar names the dev cluster's password in the DSNs the store keeps.
const pwVar = "PGSHARD_DEMO_PW"

func run(ctx context.Context, out io.Writer, warm time.Duration, clients, users int) error {
	began := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%6.1fs  %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	password := "demo-" + rand.Text()[:12]
	// The store's connections expand DSNs from the environment.
	if err := os.Setenv(pwVar, password); err != nil {
		return err
	}
	lookup := os.LookupEnv
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 2, Replicas: 1, Password: password}.Logical())
	if err != nil {
		return err
	}
	defer c.Close()
	say("dev cluster: %v", c)
	hide := func(dsn string) string { return strings.Replace(dsn, ":"+password+"@", ":${"+pwVar+"}@", 1) }
	for _, sh := range c.Shards() {
		// The app's role reads the sources' logical stream.
		if err := sh.Primary.SuperExec(ctx, "ALTER ROLE pgshard REPLICATION"); err != nil {
			return err
		}
	}

	// The map, in a control database on shard0's primary.
	p0 := c.Shards()[0].Primary
	if err := p0.SuperExec(ctx, "CREATE DATABASE pgshard_control OWNER pgshard"); err != nil {
		return err
	}
	store, err := topology.Open(ctx, strings.Replace(hide(p0.DSN()), "/pgshard?", "/pgshard_control?", 1))
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Init(ctx); err != nil {
		return err
	}
	topo := app.DevTopology(c)
	m := &topology.Map{}
	for _, s := range topo.Shards {
		sh := topology.Shard{Name: s.Name, Range: s.Range, Primary: hide(s.Primary)}
		for _, r := range s.Replicas {
			sh.Replicas = append(sh.Replicas, hide(r))
		}
		m.Shards = append(m.Shards, sh)
	}
	if _, err := store.Apply(ctx, m, topology.ApplyOptions{By: "reshard demo", Reason: "the dev cluster", Lookup: lookup}); err != nil {
		return err
	}

	// The reference server, following the store.
	cfg := topo.RouterConfig(nil)
	cfg.Shards, cfg.Store, cfg.Lookup, cfg.PollInterval = nil, store, lookup, time.Second
	r, err := router.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer r.Close()
	srv, err := app.New(ctx, r, app.Options{NodeID: 1, Cache: topo.Cache, MaxLag: topo.MaxLag(), Instance: "demo"})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String()
	say("reference server on %s, following map version 1 (2 shards: -80, 80-)", url)

	// loadgen, recording the writes' latencies.
	var (
		mu     sync.Mutex
		writes []loadgen.Observation
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var (
		rep     *loadgen.Report
		loadErr error
		loaded  = make(chan struct{})
	)
	go func() {
		defer close(loaded)
		rep, loadErr = loadgen.Run(loadCtx, loadgen.Options{Targets: []string{url}, Duration: time.Hour, Concurrency: clients,
			Users: users, ReadPercent: 80, Observe: func(o loadgen.Observation) {
				if o.Method != http.MethodGet {
					o.Body, o.Header = nil, nil
					mu.Lock()
					writes = append(writes, o)
					mu.Unlock()
				}
			}})
	}()
	say("loadgen: %d clients, %d users, 80%% reads", clients, users)
	sleep(ctx, warm)

	var targets []string
	for range 4 {
		sh, err := c.AddShard(ctx, 0)
		if err != nil {
			return err
		}
		// The targets stream their changes back to the sources after the
		// switch, so that it can be undone.
		if err := sh.Primary.SuperExec(ctx, "ALTER ROLE pgshard REPLICATION"); err != nil {
			return err
		}
		targets = append(targets, hide(sh.Primary.DSN()))
		say("added %s (%s) to the running cluster", sh.Name, sh.Primary)
	}
	for _, tb := range []topology.Table{{Name: "users", Key: "id"}, {Name: "posts", Key: "user_id"},
		{Name: "user_emails", Key: "key"}, {Name: "idempotency_keys", Key: "key"}, {Name: "user_emails_claims", Reference: true}} {
		if _, err := store.AddTable(ctx, tb, topology.TableOptions{Lookup: lookup}); err != nil {
			return err
		}
	}
	say("declared users (id), posts (user_id), user_emails (key), idempotency_keys (key), user_emails_claims (reference)")

	mgr := reshard.New(store, reshard.Options{Lookup: lookup, StatusInterval: 200 * time.Millisecond})
	specs := []reshard.Spec{
		{Name: "split_lo", Source: "-80", Targets: []reshard.Target{{Range: "-40", Primary: targets[0]}, {Range: "40-80", Primary: targets[1]}}},
		{Name: "split_hi", Source: "80-", Targets: []reshard.Target{{Range: "80-c0", Primary: targets[2]}, {Range: "c0-", Primary: targets[3]}}},
	}
	runCtx, stopRuns := context.WithCancel(ctx)
	defer stopRuns()
	var runs sync.WaitGroup
	runErrs := make([]error, len(specs))
	for i, sp := range specs {
		if _, err := mgr.Create(ctx, sp); err != nil {
			return err
		}
		runs.Go(func() { runErrs[i] = mgr.Run(runCtx, sp.Name) })
		say("workflow %s: %s onto %s and %s: copying", sp.Name, sp.Source, sp.Targets[0].Range, sp.Targets[1].Range)
	}
	for _, sp := range specs {
		for {
			st, err := mgr.Get(ctx, sp.Name)
			if err != nil {
				return err
			}
			if st.Phase == reshard.PhaseStreaming {
				var parts []string
				for _, t := range slices.Sorted(maps.Keys(st.Copied)) {
					parts = append(parts, fmt.Sprintf("%s %d", t, st.Copied[t]))
				}
				say("workflow %s: copied in %v (%s rows); streaming", sp.Name, st.CopyTime.Round(time.Millisecond), strings.Join(parts, ", "))
				break
			}
			if st.Error != "" || ctx.Err() != nil {
				return fmt.Errorf("workflow %s: %s %v", sp.Name, st.Error, ctx.Err())
			}
			sleep(ctx, 100*time.Millisecond)
		}
	}
	sleep(ctx, warm/2)
	clean := true
	for _, sp := range specs {
		st, err := mgr.Status(ctx, sp.Name)
		if err != nil {
			return err
		}
		say("workflow %s: lag %d bytes, %.2f s", sp.Name, st.LagBytes, st.LagSeconds)
		v, err := mgr.Verify(ctx, sp.Name, reshard.VerifyOptions{Timeout: time.Minute})
		if err != nil {
			return err
		}
		var rows int64
		for _, tc := range v.Tables {
			for _, n := range tc.Targets {
				rows += n
			}
		}
		say("workflow %s: verify at %s: %d rows compared, %d differences", sp.Name, v.Position, rows, len(v.Diffs))
		for _, d := range v.Diffs {
			say("  DIFF %s on %s at %s: %s", d.Table, d.Target, d.Key, d.Problem)
		}
		clean = clean && v.Clean()
	}
	type window struct{ from, to time.Time }
	var switches []window
	for _, sp := range specs {
		var (
			from time.Time
			st   *reshard.State
			err  error
		)
		for try := 1; ; try++ {
			// The lag check fails, fencing nothing, while the targets
			// trail by more than MaxLag: an operator tries again.
			from = time.Now()
			st, err = mgr.SwitchWrites(ctx, sp.Name, reshard.SwitchOptions{MaxLag: time.Second, Timeout: 10 * time.Second, By: "reshard demo"})
			if err == nil || try == 10 || !strings.Contains(err.Error(), "nothing fenced") {
				break
			}
			say("workflow %s: %v; again", sp.Name, err)
		}
		if err != nil {
			return err
		}
		switches = append(switches, window{from, time.Now()})
		say("workflow %s: writes switched in %v: map version %d (reverse replication: %t)", sp.Name, time.Since(from).Round(time.Millisecond), st.SwitchedVersion, st.Reverse)
	}
	sleep(ctx, warm)
	stopLoad()
	<-loaded
	if loadErr != nil {
		return loadErr
	}
	for _, sp := range specs {
		if _, err := mgr.Complete(ctx, sp.Name); err != nil {
			return err
		}
	}
	runs.Wait()
	if err := errors.Join(runErrs...); err != nil {
		return err
	}
	say("workflows completed: slots and publications dropped, the 2 old shards retired")

	cur, err := store.Current(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nmap version %d:\n", cur.Version)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, sh := range cur.Shards {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", sh.Name, sh.Range, sh.Primary)
	}
	tw.Flush()
	var during []time.Duration
	for _, o := range writes {
		for _, w := range switches {
			if !o.Start.Before(w.from) && o.Start.Before(w.to) {
				during = append(during, o.Latency)
			}
		}
	}
	slices.Sort(during)
	p99, worst := time.Duration(0), time.Duration(0)
	if n := len(during); n > 0 {
		p99, worst = during[n*99/100], during[n-1]
	}
	fmt.Fprintf(out, "\nclients: %d requests, %d errors, %d stale reads of %d checked, %d acknowledged writes lost of %d users and %d posts re-read\n",
		rep.Requests, rep.Errors, rep.StaleReads, rep.Checks, rep.Verify.Lost, rep.Verify.Users, rep.Verify.Posts)
	fmt.Fprintf(out, "writes sent during the switches: %d, latency p99 %v, slowest %v (they wait at the router while the source is fenced)\n",
		len(during), p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	if rep.Errors > 0 || rep.Violations() > 0 || !clean {
		for st, body := range rep.ErrorBody {
			fmt.Fprintf(out, "  an answer %d: %.200s\n", st, body)
		}
		for _, s := range append(rep.Samples, rep.Verify.Samples...) {
			fmt.Fprintf(out, "  violation: %s\n", s)
		}
		return errors.New("the split was not clean: see above")
	}
	fmt.Fprintln(out, "ok: no request failed, no acknowledged write lost, no read-your-writes broken, verify clean")
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
