package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	Options    Options
	Elapsed    time.Duration // the load phase
	Requests   int
	Errors     int // transport errors and 4xx/5xx answers
	Routes     []RouteStats
	All        RouteStats     // every route together
	ByStatus   map[int]int    // 0 counts transport errors
	ErrorBody  map[int]string // an example answer for each error status
	Checks     int            // reads checked against the client's own writes
	StaleReads int            // checked reads that missed the client's own earlier write
	Samples    []string       // the first few violations seen during the load
	// Retries counts POSTs sent again with their Idempotency-Key because
	// their outcome was unknown (a 504, or no answer); Unresolved those
	// still unknown after the last retry.
	Retries, Unresolved int
	Verify              VerifyResult
}

// RouteStats are one route's figures.
type RouteStats struct {
	Route         string
	Count         int
	Errors        int
	P50, P95, P99 time.Duration
	ByStatus      map[int]int
}

// Violations counts the consistency failures: stale reads during the load,
// writes lost at the end, writes that could not be read back at all,
// posts made twice, and posts refused (5xx but 504) that exist anyway.
func (r *Report) Violations() int {
	return r.StaleReads + r.Verify.Lost + r.Verify.Unverified + r.Verify.Duplicates + r.Verify.Phantoms
}

// Failed says whether the run found a violation: the command exits non-zero.
func (r *Report) Failed() bool { return r.Violations() > 0 }

func newReport(o Options, elapsed time.Duration, clients []*client) *Report {
	rep := &Report{Options: o, Elapsed: elapsed, ByStatus: map[int]int{}, ErrorBody: map[int]string{}}
	var all []time.Duration
	for rt := range numRoutes {
		rs := RouteStats{Route: routeNames[rt], ByStatus: map[int]int{}}
		var lat []time.Duration
		for _, c := range clients {
			lat = append(lat, c.lat[rt]...)
			for st, n := range c.status[rt] {
				rs.ByStatus[st] += n
				rep.ByStatus[st] += n
				if isError(rt, st) {
					rs.Errors += n
				}
			}
		}
		all = append(all, lat...)
		slices.Sort(lat)
		rs.Count = len(lat)
		rs.P50, rs.P95, rs.P99 = percentile(lat, 50), percentile(lat, 95), percentile(lat, 99)
		rep.Requests += rs.Count
		rep.Errors += rs.Errors
		rep.Routes = append(rep.Routes, rs)
	}
	slices.Sort(all)
	rep.All = RouteStats{Route: "all", Count: len(all), Errors: rep.Errors, ByStatus: rep.ByStatus,
		P50: percentile(all, 50), P95: percentile(all, 95), P99: percentile(all, 99)}
	for _, c := range clients {
		for st, b := range c.errBody {
			if _, ok := rep.ErrorBody[st]; !ok {
				rep.ErrorBody[st] = b
			}
		}
		rep.Checks += c.checks
		rep.StaleReads += c.stale
		rep.Retries += c.retries
		rep.Unresolved += c.unresolved
		for _, s := range c.samples {
			if len(rep.Samples) < 10 {
				rep.Samples = append(rep.Samples, s)
			}
		}
	}
	return rep
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// Write prints the report.
func (r *Report) Write(w io.Writer) {
	o := r.Options
	secs := r.Elapsed.Seconds()
	pacing := ""
	if o.Rate > 0 {
		pacing = fmt.Sprintf(", paced at %g req/s", o.Rate)
	}
	fmt.Fprintf(w, "\nloadgen: %s against %s; %d clients%s, %d%% reads, %d-user population\n",
		r.Elapsed.Round(time.Millisecond), strings.Join(o.Targets, ", "), o.Concurrency, pacing, o.ReadPercent, o.Users)
	fmt.Fprintf(w, "requests: %d in %.1fs = %.0f/s; errors: %d\n\n", r.Requests, secs, float64(r.Requests)/secs, r.Errors)
	fmt.Fprintf(w, "%-24s %9s %9s %9s %9s %9s %7s\n", "route", "count", "req/s", "p50", "p95", "p99", "errors")
	for _, rs := range append(slices.Clone(r.Routes), r.All) {
		fmt.Fprintf(w, "%-24s %9d %9.1f %9s %9s %9s %7d\n", rs.Route, rs.Count, float64(rs.Count)/secs,
			ms(rs.P50), ms(rs.P95), ms(rs.P99), rs.Errors)
	}
	var errs []string
	for _, st := range slices.Sorted(mapKeys(r.ByStatus)) {
		if st == 0 || st >= 400 {
			errs = append(errs, fmt.Sprintf("%s x%d", statusName(st), r.ByStatus[st]))
		}
	}
	if len(errs) == 0 {
		errs = []string{"none"}
	}
	fmt.Fprintf(w, "\nerrors by status: %s\n", strings.Join(errs, ", "))
	for _, st := range slices.Sorted(mapKeys(r.ErrorBody)) {
		fmt.Fprintf(w, "  %s, for example: %.200s\n", statusName(st), r.ErrorBody[st])
	}
	if r.ByStatus[429] > 0 {
		fmt.Fprintln(w, "  (429: the server's per-IP rate limit; start it with -rate 0 for load tests)")
	}
	v := r.Verify
	fmt.Fprintf(w, "consistency: %d stale reads of %d checked; final re-read of %d users and %d posts in %s: %d lost, %d unverifiable, %d duplicated, %d refused but committed\n",
		r.StaleReads, r.Checks, v.Users, v.Posts, v.Elapsed.Round(time.Millisecond), v.Lost, v.Unverified, v.Duplicates, v.Phantoms)
	if r.Retries > 0 || r.Unresolved > 0 {
		fmt.Fprintf(w, "outcome unknown (504 or no answer): %d POSTs retried with their Idempotency-Key; %d still unknown after %d retries\n",
			r.Retries, r.Unresolved, maxRetries)
	}
	for _, s := range append(slices.Clone(r.Samples), v.Samples...) {
		fmt.Fprintln(w, "  violation:", s)
	}
	if r.Failed() {
		fmt.Fprintf(w, "FAIL: %d consistency violations\n", r.Violations())
	} else {
		fmt.Fprintln(w, "OK: no consistency violations")
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func statusName(st int) string {
	if st == 0 {
		return "transport"
	}
	return fmt.Sprint(st)
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
