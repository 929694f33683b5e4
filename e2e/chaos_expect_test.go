package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pgshard/pgshard/internal/loadgen"
)

// chaosKnownGaps are the expectations, by scenario and check, that the
// library is known not to meet yet, with why. One that is not met is
// reported as such in RELIABILITY.md and logged, but does not fail the
// test, so that make test stays green until the fix; remove its entry
// with the fix.
var chaosKnownGaps = map[string]string{}

// expect records an expectation that fails the test when it is not met.
func (e *chaosEnv) expect(res *chaosResult, met bool, what, got string) {
	e.t.Helper()
	if gap, ok := chaosKnownGaps[e.name+": "+what]; ok {
		if !met {
			res.Checks = append(res.Checks, chaosCheck{what, got + "; known library gap: " + gap, false})
			e.t.Logf("expectation not met, a known library gap: %s: got %s (%s)", what, got, gap)
			return
		}
		res.note("Known library gap, not hit in this run (it depends on what is in flight at the fault): %s: %s.", what, gap)
	}
	res.Checks = append(res.Checks, chaosCheck{what, got, met})
	if !met {
		e.t.Errorf("expectation not met: %s: got %s", what, got)
	}
}

// expectAvailable records an expectation on availability: failures are
// the answers that break it. When the machine starved the router or the
// databases, such failures say nothing of the fault injected: one not met
// is then reported with the starvation, and does not fail the test.
func (e *chaosEnv) expectAvailable(res *chaosResult, failures []chaosObs, what, got string) {
	e.t.Helper()
	bodies := make([]string, len(failures))
	for i, o := range failures {
		bodies[i] = o.body
	}
	if why := e.starvation(bodies); why != "" {
		got += "; " + why
		res.Checks = append(res.Checks, chaosCheck{what, got, false})
		e.t.Logf("expectation not met, under starvation (not failing the test): %s: got %s", what, got)
		return
	}
	e.expect(res, len(failures) == 0, what, got)
}

// starvation says why failures (their messages) may be the busy machine's
// doing rather than the fault's: the router's checks timed out, after
// which it takes healthy nodes for dead ones; or every failure is a
// timeout, which no injected fault causes. "" when there are no failures
// or neither holds.
func (e *chaosEnv) starvation(failures []string) string {
	if len(failures) == 0 {
		return ""
	}
	if n := e.checkTimeouts(); n > 0 {
		return fmt.Sprintf("the machine starved the router's checker (checks timed out in %d samples)", n)
	}
	for _, f := range failures {
		if !isTimeout(f) {
			return ""
		}
	}
	return "each a timeout: the machine was too busy"
}

func isTimeout(msg string) bool {
	for _, s := range []string{"timeout", "deadline exceeded", "did not answer in time"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// checkTimeouts counts the router samples, across instances, in which a
// check had timed out.
func (e *chaosEnv) checkTimeouts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, in := range e.instances {
		n += in.stats.checkTimeouts()
	}
	return n
}

// expectWithin records a timing expectation: met when got <= want. A
// shared 2-core machine cannot promise the bounds to the
// millisecond, so only a figure past the generous bound fails the test;
// one between the two is reported as not met.
func (e *chaosEnv) expectWithin(res *chaosResult, what string, got, want, generous time.Duration, found bool) {
	e.t.Helper()
	if !found {
		res.Checks = append(res.Checks, chaosCheck{what, "never", false})
		e.t.Errorf("expectation not met: %s: never happened", what)
		return
	}
	res.Checks = append(res.Checks, chaosCheck{what, fmtDur(got), got <= want})
	switch {
	case got > generous:
		e.t.Errorf("expectation not met: %s: %v, past even the generous bound %v", what, got, generous)
	case got > want:
		e.t.Logf("expectation not met (reported, within the generous bound %v): %s: %v", generous, what, got)
	}
}

// clients fills the figures every scenario reports from the timeline and
// the loadgen report, and checks what every scenario expects of them:
// no read-your-writes violation, no acknowledged write lost.
func (e *chaosEnv) clients(res *chaosResult, rep *loadgen.Report) {
	obs := e.tl.all(nil)
	res.Requests = len(obs)
	res.Errors = errorsByStatus(obs)
	res.Violations += rep.StaleReads + rep.Verify.Duplicates + rep.Verify.Phantoms
	res.Lost = rep.Verify.Lost
	e.expect(res, rep.StaleReads == 0, "0 read-your-writes violations", fmt.Sprintf("%d of %d checked reads", rep.StaleReads, rep.Checks))
	e.expect(res, rep.Verify.Duplicates == 0, "0 posts made twice (every POST carries an Idempotency-Key; a 504 or a lost answer is retried with it)",
		fmt.Sprintf("%d duplicated; %d POSTs retried, %d still unknown after the retries", rep.Verify.Duplicates, rep.Retries, rep.Unresolved))
	e.expect(res, rep.Verify.Phantoms == 0, "0 posts answered 503 (nothing committed) that exist all the same",
		fmt.Sprintf("%d of the posts refused with a 5xx other than 504", rep.Verify.Phantoms))
	verified := fmt.Sprintf("%d lost, %d unverifiable, of %d users and %d posts re-read", rep.Verify.Lost,
		rep.Verify.Unverified, rep.Verify.Users, rep.Verify.Posts)
	if why := e.starvation(rep.Verify.Samples); rep.Verify.Lost == 0 && rep.Verify.Unverified > 0 && why != "" {
		res.Checks = append(res.Checks, chaosCheck{"0 acknowledged writes lost", verified + "; " + why, false})
		e.t.Logf("acknowledged writes unverifiable, under starvation (not failing the test): %s; %s", verified, why)
	} else {
		e.expect(res, rep.Verify.Lost == 0 && rep.Verify.Unverified == 0, "0 acknowledged writes lost", verified)
	}
	for _, s := range append(slices.Clone(rep.Samples), rep.Verify.Samples...) {
		res.note("violation: %s", s)
	}
	if n := e.checkTimeouts(); n > 0 {
		res.note("The machine starved the router's checker: a check timed out (CheckTimeout 250 ms) in %d of the router samples, and a node whose check times out counts as down; availability figures are then not the fault's alone.", n)
	}
	for _, st := range slices.Sorted(maps.Keys(rep.ErrorBody)) {
		res.note("an answer with status %s: %s", statusText(st), errorText([]byte(rep.ErrorBody[st]), nil))
	}
}
