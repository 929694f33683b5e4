package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pgshard/pgshard/internal/loadgen"
)

// summary is what a soak found.
type summary struct {
	cfg                   config
	when                  time.Time
	topology              string
	cpus                  int
	goVersion, platform   string
	pid                   int
	report                *loadgen.Report
	idleBefore, idleAfter sample
	endOfLoad             sample
	series                []sample // during the load, every cfg.sample
	serverExit            string
}

// Thresholds above which the verdict warns of a leak.
const (
	leakGoroutines = 10   // more goroutines idle after than idle before
	leakRSSGrowth  = 0.20 // RSS growth after the warm-up
)

// ok says whether the load went without an error or a violation.
func (s *summary) ok() bool {
	return s.report.Errors == 0 && s.report.Violations() == 0 && s.endOfLoad.errors5xx == 0
}

// warm is the sample that ends the warm-up: the first a tenth of the way
// into the load (at least a minute, when the load is long enough).
func (s *summary) warm() (sample, bool) {
	if len(s.series) < 2 {
		return sample{}, false
	}
	from := max(s.cfg.duration/10, min(time.Minute, s.cfg.duration/3))
	for _, smp := range s.series[:len(s.series)-1] {
		if smp.at >= from {
			return smp, true
		}
	}
	return s.series[0], true
}

// growth is the relative growth of RSS from the warm-up to the end of the load.
func (s *summary) growth() (float64, bool) {
	w, ok := s.warm()
	if !ok || w.rss == 0 {
		return 0, false
	}
	return s.last().rss/w.rss - 1, true
}

// last is the last sample of the load.
func (s *summary) last() sample {
	if len(s.series) == 0 {
		return s.endOfLoad
	}
	return s.series[len(s.series)-1]
}

func (s *summary) markdown() string {
	var b strings.Builder
	c, r := s.cfg, s.report
	fmt.Fprintf(&b, "### Soak: %s at %g req/s against a dev server (%d shards x %d replica)\n\n", c.duration, c.rate, c.shards, c.replicas)
	fmt.Fprintf(&b, "`make soak` on %s; %s %s, %d CPUs; %s; server pid %d.\n", s.when.UTC().Format("2006-01-02 15:04 MST"),
		s.goVersion, s.platform, s.cpus, s.topology, s.pid)
	fmt.Fprintf(&b, "Load: loadgen in the driver's process, %d clients paced at %g req/s in all, %d%% reads, a %d-user population, seed %d; "+
		"the server's /metrics read every %s.\n\n", c.concurrency, c.rate, c.read, c.users, c.seed, c.sample)

	secs := r.Elapsed.Seconds()
	b.WriteString("| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| requests | %d in %.1f s: **%.1f req/s** (target %g) |\n", r.Requests, secs, float64(r.Requests)/secs, c.rate)
	fmt.Fprintf(&b, "| latency, all routes | p50 %s, p95 %s, **p99 %s** |\n", ms(r.All.P50), ms(r.All.P95), ms(r.All.P99))
	fmt.Fprintf(&b, "| errors | **%d** (%s); the server counted %.0f answers 5xx |\n", r.Errors, byStatus(r.ByStatus), s.endOfLoad.errors5xx)
	v := r.Verify
	fmt.Fprintf(&b, "| consistency violations | **%d**: %d stale reads of %d checked; final re-read of %d users and %d posts: %d lost, %d unverifiable |\n",
		r.Violations(), r.StaleReads, r.Checks, v.Users, v.Posts, v.Lost, v.Unverified)
	w, hasWarm := s.warm()
	row := func(name string, f func(sample) float64, unit func(float64) string) {
		fmt.Fprintf(&b, "| server %s | %s idle before the load", name, unit(f(s.idleBefore)))
		if hasWarm {
			fmt.Fprintf(&b, ", %s at %s (warmed up)", unit(f(w)), w.at.Round(time.Second))
		}
		end := s.last()
		fmt.Fprintf(&b, ", %s at %s", unit(f(end)), end.at.Round(time.Second))
		if hasWarm && f(w) > 0 {
			fmt.Fprintf(&b, " (%+.1f%% after the warm-up)", 100*(f(end)/f(w)-1))
		}
		fmt.Fprintf(&b, ", %s idle after |\n", unit(f(s.idleAfter)))
	}
	count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	row("goroutines", func(x sample) float64 { return x.goroutines }, count)
	row("RSS", func(x sample) float64 { return x.rss }, mib)
	row("Go heap in use", func(x sample) float64 { return x.heap }, mib)
	row("open files", func(x sample) float64 { return x.fds }, count)
	fmt.Fprintf(&b, "| server stop | %s |\n", s.serverExit)
	fmt.Fprintf(&b, "| verdict | %s |\n\n", s.verdict())

	b.WriteString("| route | requests | p50 | p95 | p99 | errors |\n|---|---:|---:|---:|---:|---:|\n")
	for _, rs := range append(slices.Clone(r.Routes), r.All) {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %d |\n", rs.Route, rs.Count, ms(rs.P50), ms(rs.P95), ms(rs.P99), rs.Errors)
	}

	b.WriteString("\nThe server over time, from its /metrics (open files include the pools' idle connections to PostgreSQL):\n\n")
	b.WriteString("| time | req/s | goroutines | RSS | Go heap | open files |\n|---:|---:|---:|---:|---:|---:|\n")
	prev := s.idleBefore
	for _, smp := range s.timeline() {
		rate := 0.0
		if d := (smp.at - prev.at).Seconds(); d > 0 {
			rate = (smp.requests - prev.requests) / d
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %s | %s | %.0f |\n", smp.at.Round(time.Second), rate, smp.goroutines, mib(smp.rss), mib(smp.heap), smp.fds)
		prev = smp
	}
	return b.String()
}

// timeline is the samples to show: about one a minute on a long run,
// every one on a short run.
func (s *summary) timeline() []sample {
	step := 1
	if s.cfg.duration >= 3*time.Minute && s.cfg.sample < time.Minute {
		step = int(time.Minute / s.cfg.sample)
	}
	var out []sample
	for i := step - 1; i < len(s.series); i += step {
		out = append(out, s.series[i])
	}
	if n := len(s.series); n > 0 && (len(out) == 0 || out[len(out)-1] != s.series[n-1]) {
		out = append(out, s.series[n-1])
	}
	return out
}

func (s *summary) verdict() string {
	var notes []string
	if s.ok() {
		notes = append(notes, "OK: no error, no consistency violation")
	} else {
		notes = append(notes, fmt.Sprintf("FAIL: %d errors, %d consistency violations", s.report.Errors, s.report.Violations()))
	}
	if d := s.idleAfter.goroutines - s.idleBefore.goroutines; d > leakGoroutines {
		notes = append(notes, fmt.Sprintf("WARNING: %+.0f goroutines idle after the load than before: a leak?", d))
	} else {
		notes = append(notes, fmt.Sprintf("goroutines back to idle (%+.0f)", d))
	}
	if g, ok := s.growth(); ok && g > leakRSSGrowth {
		notes = append(notes, fmt.Sprintf("WARNING: RSS grew %.0f%% after the warm-up: a leak?", 100*g))
	} else if ok {
		notes = append(notes, fmt.Sprintf("RSS %+.1f%% after the warm-up", 100*g))
	}
	return strings.Join(notes, "; ")
}

func byStatus(m map[int]int) string {
	var out []string
	for _, st := range slices.Sorted(func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		if st == 0 || st >= 400 {
			name := fmt.Sprint(st)
			if st == 0 {
				name = "transport"
			}
			out = append(out, fmt.Sprintf("%s x%d", name, m[st]))
		}
	}
	if len(out) == 0 {
		return "none by status"
	}
	return strings.Join(out, ", ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
