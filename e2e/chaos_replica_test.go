package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// 2. Replica crash: SIGKILL a replica under load, start it again later. No
// read may fail, and the replica is back in rotation within 1 s of having
// caught up.
func chaosReplicaCrash(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Replica crash"}
	a := e.server("a", 102, nil, nil)
	ctx := context.Background()
	n := e.node("shard0-replica1")
	port := n.Port()
	defer n.Start(ctx)

	lr := e.load(0, a)
	stop := e.bystanders(3, a)
	defer stop()
	time.Sleep(e.len.warm)
	require.NoError(t, n.Kill(ctx))
	killed := e.mark("shard0-replica1 killed (SIGKILL to the postmaster and every backend)")
	time.Sleep(e.len.down)
	require.NoError(t, n.Start(ctx))
	started := e.mark("shard0-replica1 started again (crash recovery done, accepting connections)")
	backlog, _ := e.pos.primaryLSN("shard0")
	e.await(20*time.Second, func() bool { _, ok := a.stats.first(started, nodeEligible(port)); return ok })
	time.Sleep(e.len.after)
	rep := lr.end(t)
	stop()
	e.clients(res, rep)

	obs := e.tl.all(nil)
	failed := filterObs(obs, allOf(obsRead, (*chaosObs).failed))
	failedReads := len(failed)
	out, outOK := a.stats.first(killed, nodeIneligible(port))
	caught, caughtOK := e.pos.reached(port, started, backlog)
	back, backOK := a.stats.first(started, nodeEligible(port))
	cut := e.trace.failures(port, killed.Add(-time.Second), started)
	res.Injected = fmt.Sprintf("shard0-replica1 killed (SIGKILL) after %s of load, started again %s later", fmtDur(e.len.warm), fmtDur(e.len.down))
	res.Saw = fmt.Sprintf("%d failed reads of %d; %d errors in all; %d reads cut off on the dead replica (retried on another node unless a row had reached the caller)",
		failedReads, countObs(obs, obsRead), countObs(obs, (*chaosObs).isError), cut)
	res.Detect = "kill -> out of rotation: " + fmtSince(out, killed, outOK)
	readmit := back.Sub(caught)
	res.Recover = fmt.Sprintf("caught up -> re-admitted: %s (start -> caught up %s, start -> re-admitted %s)",
		fmtSince(back, caught, backOK && caughtOK), fmtSince(caught, started, caughtOK), fmtSince(back, started, backOK))
	e.expectAvailable(res, failed, "0 failed reads", fmt.Sprint(failedReads))
	e.expectWithin(res, "re-admitted within 1 s of being caught up", readmit, time.Second, generous(time.Second), backOK && caughtOK)
	for _, o := range firstN(e.tl.all(allOf(obsRead, (*chaosObs).failed)), 3) {
		res.note("a failed read: %s answered %d at %.3fs: %s", o.route, o.status, o.end.Sub(e.began).Seconds(), o.body)
	}
	if failedReads > 0 {
		res.note("Why reads failed: the crash cut them off once their rows had begun to reach the caller. replica.Rows retries a read on another node only while no row has reached the caller, so such a read fails with the connection's error (an unexpected EOF or a reset); a single-row read (QueryRow) keeps a row that arrived whole.")
	}
	res.note("Time to detect: from Kill returning to the first router sample showing the replica ineligible.")
	res.note("Caught up: the end of the first position sample, after the restart, in which the replica had replayed the primary's position as sampled when Start returned, i.e. everything written while it was down (to within one sampler period). Re-admitted: the first router sample showing it eligible. A negative figure means the router took it back before it had replayed all of that, its lag being within the bound already.")
	return res
}

// 7. Slow replica: recovery_min_apply_delay = 2 s on one replica. It must
// be excluded by its time lag although its byte lag stays small.
func chaosSlowReplica(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Slow replica"}
	a := e.server("a", 107, nil, nil)
	ctx := context.Background()
	n := e.node("shard0-replica1")
	port := n.Port()
	defer n.SetSetting(ctx, "recovery_min_apply_delay", "0")

	lr := e.load(0, a)
	stop := e.bystanders(3, a)
	defer stop()
	time.Sleep(e.len.warm)
	require.NoError(t, n.SetSetting(ctx, "recovery_min_apply_delay", "2s"))
	delayed := e.mark("shard0-replica1: recovery_min_apply_delay = 2s (reloaded)")
	time.Sleep(e.len.delayed)
	require.NoError(t, n.SetSetting(ctx, "recovery_min_apply_delay", "0"))
	undelayed := e.mark("shard0-replica1: recovery_min_apply_delay = 0 (reloaded)")
	e.await(20*time.Second, func() bool { _, ok := a.stats.first(undelayed, nodeEligible(port)); return ok })
	time.Sleep(e.len.after)
	rep := lr.end(t)
	stop()
	e.clients(res, rep)

	out, outOK := a.stats.first(delayed, nodeIneligible(port))
	back, backOK := a.stats.first(undelayed, nodeEligible(port))
	var lagging bool
	var maxBytes int64
	var maxLag time.Duration
	a.stats.each(delayed, undelayed, func(s *statsSample) {
		if ns := s.node(port); ns.reason == "lagging" {
			lagging = true
			maxBytes = max(maxBytes, ns.lagBytes)
			maxLag = max(maxLag, ns.lag)
		}
	})
	trueLag := e.pos.maxLag(port, delayed, undelayed)
	lc := e.checkReplicaReads(delayed.Add(-e.len.warm), undelayed.Add(e.len.after), chaosMaxLag, nil)
	obs := e.tl.all(nil)
	errs := countObs(obs, (*chaosObs).isError)
	res.Injected = fmt.Sprintf("recovery_min_apply_delay = 2s on shard0-replica1 for %s, then 0", fmtDur(e.len.delayed))
	res.Saw = fmt.Sprintf("%d errors; %d replica reads checked, %d by the slow replica; every served read's true lag at most %s",
		errs, lc.reads, lc.perNode[port], fmtDur(lc.max))
	res.Detect = "delay set -> out of rotation: " + fmtSince(out, delayed, outOK)
	res.Recover = "delay removed -> back in rotation: " + fmtSince(back, undelayed, backOK)
	e.expect(res, lagging && maxBytes < chaosMaxLagBytes, "excluded by time lag while its byte lag looks small",
		fmt.Sprintf("reason lagging: %v; while excluded, router lag up to %s, byte lag up to %d bytes (bound %d); true lag up to %s",
			lagging, fmtDur(maxLag), maxBytes, chaosMaxLagBytes, fmtDur(trueLag)))
	e.expect(res, lc.beyond == 0, "0 reads served by a replica beyond the lag bound",
		fmt.Sprintf("%d of %d (largest lag: at most %s, at least %s)", lc.beyond, lc.reads, fmtDur(lc.max), fmtDur(lc.maxFloor)))
	e.expectAvailable(res, filterObs(obs, (*chaosObs).isError), "no errors", fmt.Sprint(errs))
	e.noteLag(res, lc)
	res.note("Time to detect: from the setting being reloaded to the first router sample showing the replica ineligible. Replay stalls at the first commit younger than 2 s, so the replica's data ages from then on and is dropped once lag + the check's age pass MaxLag: about 1 s, by design.")
	res.note("Time to recover: from the delay's removal (reloaded) to the first sample showing the replica eligible again.")
	return res
}
