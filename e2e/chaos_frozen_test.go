package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// 9. Frozen primary: one shard's primary frozen (SIGSTOP of every process
// of the server) under a write-heavy load for longer than the request
// timeout, then thawed. A write whose COMMIT was sent but not answered may
// commit when the primary runs again: the server answers it 504 "outcome
// unknown", loadgen retries it with its Idempotency-Key, and the retry gets
// the first answer. Expected: no post made twice, nothing acknowledged
// lost, and every write answered 2xx, 503 (nothing committed) or 504
// (outcome unknown).
func chaosFrozenPrimary(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Frozen primary"}
	e.requestTimeout, e.readPercent = e.len.frozenReqTO, 50
	a := e.server("a", 109, nil, nil)
	ctx := context.Background()
	p := e.node("shard0-primary")
	defer p.Thaw(ctx)

	lr := e.load(0, a)
	time.Sleep(e.len.warm)
	require.NoError(t, p.Freeze(ctx))
	frozen := e.mark("shard0-primary frozen (SIGSTOP)")
	time.Sleep(e.len.frozen)
	require.NoError(t, p.Thaw(ctx))
	thawed := e.mark("shard0-primary thawed (SIGCONT)")
	e.await(20*time.Second, e.acked("shard0", thawed))
	time.Sleep(e.len.after + e.len.frozenReqTO) // the last retries resolve
	rep := lr.end(t)
	e.clients(res, rep)

	writes := e.tl.all(allOf(toShard("shard0"), obsWrite, sentIn(frozen, thawed)))
	var acked, unavailable, unknown, other int
	for _, o := range writes {
		switch {
		case o.ok():
			acked++
		case o.status == http.StatusServiceUnavailable:
			unavailable++
		case o.status == http.StatusGatewayTimeout:
			unknown++
		default:
			other++
		}
	}
	e.expect(res, other == 0, "every write sent while frozen answered 2xx, 503 (nothing committed) or 504 (outcome unknown)",
		fmt.Sprintf("%d writes: %d 2xx, %d 503, %d 504, %d other", len(writes), acked, unavailable, unknown, other))
	back, backOK := e.tl.firstEnd(allOf(toShard("shard0"), obsWrite, (*chaosObs).ok, func(o *chaosObs) bool { return !o.start.Before(thawed) }))
	first, firstOK := e.tl.firstEnd(allOf(toShard("shard0"), obsWrite, func(o *chaosObs) bool { return o.status == http.StatusGatewayTimeout }))
	res.Injected = fmt.Sprintf("shard0-primary frozen (SIGSTOP) for %s after %s of load (50%% writes, request timeout %s), then thawed",
		fmtDur(e.len.frozen), fmtDur(e.len.warm), fmtDur(e.len.frozenReqTO))
	res.Saw = fmt.Sprintf("writes to shard0 sent while frozen: %d (%d answered 2xx, %d 503, %d 504 outcome unknown); loadgen retried %d POSTs with their key, %d still unknown after %d retries; %d posts made twice",
		len(writes), acked, unavailable, unknown, rep.Retries, rep.Unresolved, 3, rep.Verify.Duplicates)
	res.Detect = "freeze -> first 504 (outcome unknown): " + fmtSince(first.end, frozen, firstOK)
	res.Recover = "thaw -> first write of shard0 acknowledged: " + fmtSince(back.end, thawed, backOK)
	res.note("A 504 says the write may or may not have committed: the primary had its COMMIT when it stopped answering. loadgen sends every POST with an Idempotency-Key and retries a 504 or a lost answer with it up to 3 times; the server stores the key with the write in one transaction, so a retry returns the first answer and never a second row. The final check lists every user's posts and counts any post (each has a mark of its own) seen twice.")
	return res
}
