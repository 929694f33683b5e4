package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// 3. Primary crash: one shard's primary stopped for a while under load,
// then started. Its writes are answered 503 within 2 s, never 2xx and never
// hanging; the other shard and this shard's reads are unaffected; writes
// come back within 2 s of the restart; nothing acknowledged is lost.
func chaosPrimaryCrash(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Primary crash"}
	a := e.server("a", 103, nil, nil)
	ctx := context.Background()
	p := e.node("shard0-primary")
	defer p.Start(ctx)

	lr := e.load(0, a)
	stop := e.bystanders(3, a)
	defer stop()
	time.Sleep(e.len.warm)
	stopping := e.mark("stopping shard0-primary (fast shutdown: sessions cut, shutdown checkpoint, WAL sent to the replicas)")
	require.NoError(t, p.Stop(ctx))
	stopped := e.mark("shard0-primary stopped")
	time.Sleep(e.len.down)
	starting := e.mark("starting shard0-primary")
	require.NoError(t, p.Start(ctx))
	started := e.mark("shard0-primary accepts connections")
	e.await(20*time.Second, e.acked("shard0", starting))
	time.Sleep(e.len.after)
	rep := lr.end(t)
	stop()
	e.clients(res, rep)

	out := e.outage(res, a, "shard0", stopping, stopped, starting, 2*time.Second)
	first503, ok := e.tl.firstEnd(allOf(toShard("shard0"), obsWrite, is503, func(o *chaosObs) bool { return !o.start.Before(stopping) }))
	noneAt, noneOK := a.stats.first(stopping, noPrimary("shard0"))
	res.Detect = "stop -> first 503 to a write of shard0: " + fmtSince(first503.end, stopping, ok) +
		"; router sees no primary after " + fmtSince(noneAt, stopping, noneOK)
	back, backOK := e.tl.firstEnd(allOf(toShard("shard0"), obsWrite, (*chaosObs).ok, func(o *chaosObs) bool { return !o.start.Before(starting) }))
	res.Recover = "restart -> first write of shard0 acknowledged: " + fmtSince(back.end, started, backOK)
	e.expectWithin(res, "writes recover within 2 s of the restart", back.end.Sub(started), 2*time.Second, generous(2*time.Second), backOK)
	late := e.tl.all(allOf(toShard("shard0"), obsWrite, (*chaosObs).failed, sentIn(started.Add(2*time.Second), started.Add(time.Hour))))
	e.expectAvailable(res, late, "no write of shard0 fails once recovered (sent over 2 s after the restart)", fmt.Sprint(len(late)))
	res.Injected = fmt.Sprintf("shard0-primary stopped (fast shutdown) after %s of load, started again %s later", fmtDur(e.len.warm), fmtDur(e.len.down))
	res.Saw = out
	res.note("The fault is timed from the Stop call (fast shutdown refuses new sessions at once); Stop took %s.", fmtDur(stopped.Sub(stopping)))
	res.note("Time to detect: from the Stop call to the first 503 answered to a write of shard0, and to the first router sample with no primary for shard0.")
	res.note("Time to recover: from Start returning (the server accepts connections) to the arrival of the first 2xx answer to a write of shard0 sent after Start was called; negative when the router reconnected before pgcluster saw the server ready.")
	return res
}

// 4. Failover: a primary stopped, then its first replica promoted. Writes
// of that shard succeed again within 1 s of the promotion, and nothing
// acknowledged is lost.
func chaosFailover(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Failover by promotion"}
	a := e.server("a", 104, nil, nil)
	ctx := context.Background()
	p, r1 := e.node("shard0-primary"), e.node("shard0-replica1")

	lr := e.load(0, a)
	stop := e.bystanders(3, a)
	defer stop()
	time.Sleep(e.len.warm)
	stopping := e.mark("stopping shard0-primary (fast shutdown)")
	require.NoError(t, p.Stop(ctx))
	stopped := e.mark("shard0-primary stopped")
	time.Sleep(e.len.promoteGap)
	promoting := e.mark("promoting shard0-replica1")
	require.NoError(t, r1.Promote(ctx))
	promoted := e.mark("shard0-replica1 promoted (pg_promote returned: it accepts writes)")
	e.await(20*time.Second, e.acked("shard0", promoting))
	time.Sleep(e.len.after)
	rep := lr.end(t)
	stop()
	e.clients(res, rep)

	out := e.outage(res, a, "shard0", stopping, stopped, promoting, 2*time.Second)
	first503, ok := e.tl.firstEnd(allOf(toShard("shard0"), obsWrite, is503, func(o *chaosObs) bool { return !o.start.Before(stopping) }))
	res.Detect = "stop -> first 503 to a write of shard0: " + fmtSince(first503.end, stopping, ok)
	back, backOK := e.tl.firstEnd(allOf(toShard("shard0"), obsWrite, (*chaosObs).ok, func(o *chaosObs) bool { return !o.start.Before(promoting) }))
	r1Port := r1.Port()
	switched, swOK := a.stats.first(promoting, func(s *statsSample) bool {
		pr := s.shard("shard0").primary
		return pr != "" && portOf(pr) == r1Port
	})
	res.Recover = fmt.Sprintf("promotion -> first write of shard0 acknowledged: %s (router's write target switched after %s; pg_promote took %s)",
		fmtSince(back.end, promoting, backOK), fmtSince(switched, promoting, swOK), fmtDur(promoted.Sub(promoting)))
	e.expectWithin(res, "writes succeed again within 1 s of the promotion", back.end.Sub(promoting), time.Second, generous(time.Second), backOK)
	if backOK {
		gap := e.tl.all(allOf(toShard("shard0"), obsWrite, sentIn(promoting, back.end)))
		res.note("Writes of shard0 sent between the pg_promote call and the first acknowledgement: %d; errors %s; the slowest answered in %s.",
			len(gap), fmtErrors(errorsByStatus(gap)), fmtDur(maxLatency(gap)))
	}
	late := e.tl.all(allOf(toShard("shard0"), obsWrite, (*chaosObs).failed, sentIn(promoted.Add(time.Second), promoted.Add(time.Hour))))
	e.expectAvailable(res, late, "no write of shard0 fails over 1 s after the promotion", fmt.Sprint(len(late)))
	stalled := e.tl.all(allOf(obsRead, toShard("shard0"), sentIn(stopping, switched),
		func(o *chaosObs) bool { return o.end.Sub(o.start) > chaosConnectTimeout*9/10 }))
	if swOK && len(stalled) > 0 {
		res.note("%d reads of shard0 sent while the router had no primary took about ConnectTimeout (the slowest %s) and held their clients back from writing meanwhile. With no primary, a read-your-writes read waits up to ConnectTimeout for a replica to reach its position, and goes on waiting after a primary appears; a read served by shard0-replica1 just after its promotion, while the router still counted it a replica, reported a position on the new timeline (the batched position query returns the insert position of a node out of recovery), which neither the stopped primary's follower nor the promoted node's frozen replay position will ever reach.",
			len(stalled), fmtDur(maxLatency(stalled)))
	}
	res.Injected = fmt.Sprintf("shard0-primary stopped (fast shutdown) after %s of load; %s later shard0-replica1 promoted (pg_promote); shard0-replica2 keeps following the stopped primary",
		fmtDur(e.len.warm), fmtDur(e.len.promoteGap))
	res.Saw = out
	res.note("Time to detect: from the Stop call to the first 503 answered to a write of shard0.")
	res.note("Time to recover: from the pg_promote call to the arrival of the first 2xx answer to a write of shard0 sent after it (pg_promote(wait => true) returns only at its next poll, after the server already takes writes). The router finds the new primary by itself (pg_is_in_recovery() = false at its next check): nothing tells it.")
	res.note("A fast shutdown sends every WAL record to the replicas before it ends, so the promoted replica has every acknowledged write. After a crash (SIGKILL) of the primary, asynchronous streaming replication can lose the writes acknowledged in the last milliseconds before it, whatever the library does: this scenario does not measure that.")
	return res
}

// outage checks and describes what the clients of a shard whose primary
// is down saw: writes sent while it was down (in [down, up)) all answered
// 503 within limit; no error elsewhere; reads of the shard served.
func (e *chaosEnv) outage(res *chaosResult, in *chaosInstance, shardName string, stopping, down, up time.Time, limit time.Duration) string {
	writes := e.tl.all(allOf(toShard(shardName), obsWrite, sentIn(down, up)))
	acked := countObs(writes, (*chaosObs).ok)
	not503 := countObs(writes, func(o *chaosObs) bool { return o.status != http.StatusServiceUnavailable })
	slowest := maxLatency(writes)
	e.expect(res, acked == 0 && not503 == 0, "writes to the shard answered 503 while its primary is down, never 2xx",
		fmt.Sprintf("%d writes: %d answered 2xx, %d something else than 503", len(writes), acked, not503))
	e.expectWithin(res, "each of those answered within 2 s (never hangs)", slowest, limit, generous(limit), len(writes) > 0)
	other := e.tl.all(func(o *chaosObs) bool { return o.shard != shardName && o.shard != "*" && o.shard != "" })
	otherFailed := filterObs(other, (*chaosObs).isError)
	otherErrs := len(otherFailed)
	e.expectAvailable(res, otherFailed, "other shards unaffected", fmt.Sprintf("%d errors in %d requests to other shards", otherErrs, len(other)))
	reads := e.tl.all(allOf(obsRead, func(o *chaosObs) bool { return o.shard == shardName || o.shard == "*" }, sentIn(stopping, up)))
	failed := filterObs(reads, (*chaosObs).failed)
	failedReads := len(failed)
	byReplica := countObs(reads, func(o *chaosObs) bool { return o.servedBy == "replica" })
	// A router cannot tell a primary that is down from one it is cut off
	// from, where writes may go on: replicas serve for at most MaxLag after
	// the primary's last position, then reads fail, saying why. So reads
	// sent in the first half of MaxLag after the stop must succeed, and
	// every read that failed must say that no replica is proven fresh.
	early := filterObs(failed, sentIn(stopping, stopping.Add(chaosMaxLag/2)))
	e.expectAvailable(res, early, "reads of the shard keep working for MaxLag/2 after its primary stops",
		fmt.Sprintf("%d failed of %d (%d failed in all, later)", len(early), len(reads), failedReads))
	unexplained := filterObs(failed, func(o *chaosObs) bool {
		return o.status != http.StatusServiceUnavailable || !strings.Contains(o.body, "no eligible replica")
	})
	e.expectAvailable(res, unexplained, "a read that fails while the primary is down answers 503 saying no replica is proven within the bound",
		fmt.Sprintf("%d of %d failed reads say something else", len(unexplained), failedReads))
	for _, o := range firstN(failed, 5) {
		res.note("a failed read of %s: %s sent %s after the stop began, answered %d: %s", shardName, o.route,
			fmtDur(o.start.Sub(stopping)), o.status, o.body)
	}
	unknown := countObs(e.tl.all(nil), func(o *chaosObs) bool { return o.shard == "" })
	if unknown > 0 {
		res.note("%d answers could not be assigned to a shard (a failed user creation whose error names none).", unknown)
	}
	return fmt.Sprintf("writes to %s while its primary was down: %d, %d answered 503, the slowest in %s; reads of %s meanwhile: %d, %d failed, %d answered by a replica; other shard: %d requests, %d errors",
		shardName, len(writes), len(writes)-not503, fmtDur(slowest), shardName, len(reads), failedReads, byReplica, len(other), otherErrs)
}

// acked says whether a write to the shard sent after from was acknowledged.
func (e *chaosEnv) acked(shardName string, from time.Time) func() bool {
	return func() bool {
		_, ok := e.tl.firstEnd(allOf(toShard(shardName), obsWrite, (*chaosObs).ok, func(o *chaosObs) bool { return !o.start.Before(from) }))
		return ok
	}
}

func is503(o *chaosObs) bool { return o.status == http.StatusServiceUnavailable }

// noPrimary says a shard has no write target in a sample.
func noPrimary(shardName string) func(*statsSample) bool {
	return func(s *statsSample) bool { return s.shard(shardName).primary == "" }
}
