package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgshard/pgshard/examples/deploy/stack"
	"github.com/pgshard/pgshard/internal/loadgen"
)

// Markers of deploy-test's section of RELIABILITY.md, which it replaces on each run.
const (
	reportBegin = "<!-- deploy-test: begin (written by make deploy-test; keep this block) -->"
	reportEnd   = "<!-- deploy-test: end -->"
)

// test runs loadgen through HAProxy while one instance is killed and restarted and one
// replica's replay is paused, then checks that no acknowledged write was lost, that no
// client missed its own write, and that HAProxy took the dead instance out within its
// check interval.
func test(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := stackFlags(fs)
	duration := fs.Duration("duration", 60*time.Second, "how long the load lasts")
	rate := fs.Float64("rate", 200, "requests a second through HAProxy")
	concurrency := fs.Int("concurrency", 16, "loadgen's virtual clients")
	report := fs.String("report", "RELIABILITY.md", "file whose deploy-test section is replaced ('' for none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Log = stderr
	s, err := stack.Up(ctx, *o)
	if err != nil {
		return err
	}
	defer s.Close()
	printURLs(stdout, s)

	var (
		mu     sync.Mutex
		events []string
		detect time.Duration
		back   time.Duration
		faults error
	)
	began := time.Now()
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		line := fmt.Sprintf("%6.1f s  ", time.Since(began).Seconds()) + fmt.Sprintf(format, args...)
		events = append(events, line)
		fmt.Fprintln(stderr, line)
	}
	at := func(frac float64) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(began.Add(time.Duration(frac * float64(*duration))))):
			return true
		}
	}
	victim, replica := 1, s.Cluster.Shards()[0].Replicas[0]
	var wg sync.WaitGroup
	wg.Go(func() {
		fail := func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if faults == nil {
				faults = err
			}
		}
		name := s.Instances[victim].Name
		if !at(1.0 / 6) {
			return
		}
		killed := time.Now()
		if err := s.KillInstance(ctx, victim); err != nil {
			fail(err)
			return
		}
		note("killed %s (SIGKILL)", name)
		down, err := s.WaitBackend(ctx, name, "DOWN")
		if err != nil {
			fail(err)
			return
		}
		detect = down.Sub(killed)
		note("HAProxy marked %s DOWN, %v after the kill", name, detect.Round(time.Millisecond))
		if !at(2.0 / 6) {
			return
		}
		restarted := time.Now()
		if err := s.StartInstance(ctx, victim); err != nil {
			fail(err)
			return
		}
		note("restarted %s: ready", name)
		up, err := s.WaitBackend(ctx, name, "UP")
		if err != nil {
			fail(err)
			return
		}
		back = up.Sub(restarted)
		note("HAProxy marked %s UP, %v after the restart", name, back.Round(time.Millisecond))
		if !at(3.0 / 6) {
			return
		}
		if err := replica.PauseReplay(ctx); err != nil {
			fail(err)
			return
		}
		note("paused replay on %s", replica.Name())
		if !at(5.0 / 6) {
			return
		}
		if err := replica.ResumeReplay(context.WithoutCancel(ctx)); err != nil {
			fail(err)
			return
		}
		note("resumed replay on %s", replica.Name())
	})
	rep, err := loadgen.Run(ctx, loadgen.Options{Targets: []string{s.URL()}, Duration: *duration,
		Concurrency: *concurrency, Rate: *rate, Users: 2000, Progress: stderr})
	wg.Wait()
	if err != nil {
		return err
	}
	if faults != nil {
		return fmt.Errorf("fault injection: %w", faults)
	}
	rep.Write(stdout)

	limit := o.CheckInterval + 250*time.Millisecond // the next check, plus polling HAProxy's statistics
	checks := []check{
		{"0 acknowledged writes lost", rep.Verify.Lost == 0 && rep.Verify.Unverified == 0,
			fmt.Sprintf("%d lost, %d unverifiable, of %d users and %d posts re-read", rep.Verify.Lost,
				rep.Verify.Unverified, rep.Verify.Users, rep.Verify.Posts)},
		{"0 read-your-writes violations", rep.StaleReads == 0,
			fmt.Sprintf("%d of %d checked reads", rep.StaleReads, rep.Checks)},
		{fmt.Sprintf("HAProxy takes the killed instance out within its check interval (%v, and %v for the check and for polling HAProxy's statistics)",
			o.CheckInterval, limit-o.CheckInterval),
			detect > 0 && detect <= limit, fmt.Sprintf("%v after the kill", detect.Round(time.Millisecond))},
	}
	section := renderReport(s, *o, *duration, *rate, *concurrency, rep, checks, events, back)
	fmt.Fprintln(stdout, section)
	if *report != "" {
		if err := replaceSection(*report, section); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote the deploy-test section of %s\n", *report)
	}
	for _, c := range checks {
		if !c.met {
			return fmt.Errorf("expectation not met: %s: %s", c.what, c.got)
		}
	}
	return nil
}

type check struct {
	what string
	met  bool
	got  string
}

func renderReport(s *stack.Stack, o stack.Options, d time.Duration, rate float64, conc int, rep *loadgen.Report,
	checks []check, events []string, back time.Duration) string {
	var b strings.Builder
	b.WriteString(reportBegin + "\n## The deployment under faults (make deploy-test)\n\n")
	fmt.Fprintf(&b, "%s. `examples/deploy`: HAProxy (health check GET /readyz every %v, fall 1, rise 2) in front of %d "+
		"reference-server instances; %s; Prometheus. loadgen through HAProxy for %v at %g requests/s, %d clients, "+
		"its default mix.\n\n", time.Now().UTC().Format("2006-01-02"), o.CheckInterval, len(s.Instances), s.Cluster,
		d, rate, conc)
	b.WriteString("| expectation | result |\n| --- | --- |\n")
	for _, c := range checks {
		status := "met"
		if !c.met {
			status = "NOT MET"
		}
		fmt.Fprintf(&b, "| %s | %s: %s |\n", c.what, status, c.got)
	}
	fmt.Fprintf(&b, "\nFaults, from the start of the load (the restarted instance was back in HAProxy's rotation %v "+
		"after it was started):\n\n", back.Round(time.Millisecond))
	for _, e := range events {
		fmt.Fprintf(&b, "    %s\n", e)
	}
	fmt.Fprintf(&b, "\nLoad: %d requests in %v (%.0f/s), %d errors", rep.Requests, rep.Elapsed.Round(time.Millisecond),
		float64(rep.Requests)/rep.Elapsed.Seconds(), rep.Errors)
	if len(rep.ByStatus) > 0 {
		var parts []string
		for st, n := range rep.ByStatus {
			if st == 0 || st >= 400 {
				label := fmt.Sprint(st)
				if st == 0 {
					label = "no answer"
				}
				parts = append(parts, fmt.Sprintf("%s x%d", label, n))
			}
		}
		sort.Strings(parts)
		if len(parts) > 0 {
			fmt.Fprintf(&b, " (%s: requests in flight on the killed instance, or refused while a shard had no primary in reach)", strings.Join(parts, ", "))
		}
	}
	fmt.Fprintf(&b, "; latency p50 %v, p95 %v, p99 %v. Regenerate with `make deploy-test`.\n",
		rep.All.P50.Round(time.Millisecond/10), rep.All.P95.Round(time.Millisecond/10), rep.All.P99.Round(time.Millisecond/10))
	b.WriteString(reportEnd + "\n")
	return b.String()
}

// replaceSection puts section in place of the file's deploy-test section, or at its end.
func replaceSection(path, section string) error {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(data)
	if i := strings.Index(text, reportBegin); i >= 0 {
		if j := strings.Index(text[i:], reportEnd); j >= 0 {
			end := i + j + len(reportEnd)
			if end < len(text) && text[end] == '\n' {
				end++
			}
			text = text[:i] + section + text[end:]
			return os.WriteFile(path, []byte(text), 0o644)
		}
	}
	if text != "" && !strings.HasSuffix(text, "\n\n") {
		text = strings.TrimRight(text, "\n") + "\n\n"
	}
	return os.WriteFile(path, []byte(text+section), 0o644)
}
