package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/examples/server/app"
	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
)

// The partial faults of issue 10: a primary that blips while a replica's
// replay is paused, one instance cut off from a primary, a healthy primary
// whose sessions are terminated, a replica of another shard in the
// topology and a frozen replica (a frozen primary is scenario 9,
// chaos_frozen_test.go). Each scenario measures
// what the library promised against the truth (the position sampler, the
// clients' answers) and learns how reads were routed from the library's
// Tracer.

// superQuery runs sql as the superuser on n and returns the int it
// answers (such as how many backends pg_terminate_backend ended).
func superQuery(ctx context.Context, n *pgcluster.Node, sql string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.SuperDSN())
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var k int
	err = conn.QueryRow(ctx, sql).Scan(&k)
	return k, err
}

// terminateSQL ends the library's sessions on a node: every client backend
// of the dev cluster's user (the position sampler's included), except
// those in keep.
const terminateSQL = `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int FROM pg_stat_activity
	WHERE usename = 'pgshard' AND backend_type = 'client backend' AND pid <> pg_backend_pid()`

// checkerSQL ends the sessions of the routers' health checks: the backends
// whose last statement reads the control file, which only the checker's
// probe does.
const checkerSQL = terminateSQL + ` AND query LIKE '%pg_control_system%'`

// 10. Lag history kept across a primary blip: replay paused on a replica,
// then the shard's primary frozen for 1 s, later the checker's session on
// it terminated. No read may be served beyond MaxLag, measured against the
// truth, and the paused replica must not be re-admitted while paused.
func chaosLagBlip(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Primary blip while replay is paused"}
	a := e.server("a", 109, nil, nil)
	ctx := context.Background()
	rep, prim := e.node("shard0-replica1"), e.node("shard0-primary")
	port := rep.Port()
	defer rep.ResumeReplay(ctx)

	lr := e.load(0, a)
	stop := e.bystanders(4, a)
	defer stop()
	time.Sleep(e.len.warm)
	require.NoError(t, rep.PauseReplay(ctx))
	paused := e.mark("shard0-replica1: replay paused")
	time.Sleep(e.len.blipPause)
	require.NoError(t, prim.FreezeForTest(ctx, t))
	blip := e.mark("shard0-primary frozen (SIGSTOP)")
	time.Sleep(time.Second)
	require.NoError(t, prim.Thaw(ctx))
	e.mark("shard0-primary thawed (SIGCONT)")
	time.Sleep(e.len.blipPause / 2)
	k, err := superQuery(ctx, prim, checkerSQL)
	require.NoError(t, err)
	e.mark("shard0-primary: %d checker session(s) terminated (pg_terminate_backend)", k)
	time.Sleep(e.len.blipPause / 2)
	require.NoError(t, rep.ResumeReplay(ctx))
	resumed := e.mark("shard0-replica1: replay resumed")
	e.await(20*time.Second, func() bool { _, ok := a.stats.first(resumed, nodeEligible(port)); return ok })
	time.Sleep(e.len.after)
	r := lr.end(t)
	stop()
	e.clients(res, r)

	lc := e.checkReplicaReads(paused.Add(-e.len.warm), resumed.Add(e.len.after), chaosMaxLag, nil)
	whilePaused := e.trace.readsOf(func(r *tracedRead) bool {
		return r.port == port && !r.failed && r.start.After(paused.Add(2*chaosMaxLag)) && r.start.Before(resumed)
	})
	readmitted := e.trace.nodeEvents(func(n *tracedNode) bool {
		return n.ev.Kind == replica.NodeAdmitted && portOf(n.ev.Node) == port && n.at.After(blip) && n.at.Before(resumed)
	})
	out, outOK := a.stats.first(paused, nodeIneligible(port))
	res.Injected = fmt.Sprintf("replay paused on shard0-replica1; %s later shard0-primary frozen for 1 s, %s after the thaw the checker's session on it terminated; replay resumed %s later",
		fmtDur(e.len.blipPause), fmtDur(e.len.blipPause/2), fmtDur(e.len.blipPause/2))
	res.Saw = fmt.Sprintf("%d replica reads checked against the truth, %d beyond the lag bound; %d reads by the paused replica later than 2 x MaxLag after the pause; re-admitted while paused: %d times",
		lc.reads, lc.beyond, len(whilePaused), len(readmitted))
	res.Detect = "replay paused -> out of rotation: " + fmtSince(out, paused, outOK)
	res.Recover = "n/a (no outage: reads go to the other replica and the primary)"
	e.expect(res, lc.beyond == 0, "0 reads served by a replica beyond the lag bound",
		fmt.Sprintf("%d of %d (largest lag: at most %s, at least %s)", lc.beyond, lc.reads, fmtDur(lc.max), fmtDur(lc.maxFloor)))
	e.expect(res, len(readmitted) == 0, "the paused replica is not re-admitted after the blip",
		fmt.Sprintf("%d admissions traced while paused", len(readmitted)))
	for _, n := range firstN(readmitted, 3) {
		res.note("re-admitted at %.3fs with lag %s (known %v)", n.at.Sub(e.began).Seconds(), fmtDur(n.ev.Lag), n.ev.LagKnown)
	}
	e.noteLag(res, lc)
	res.note("The truth: every replica read the Tracer reports (node, role, duration) is bounded by the position sampler (see below); the lag history must survive the primary's blip and the loss of the checker's session, so the paused replica stays out until replay resumes.")
	return res
}

// 11. One instance cut off from a primary: instance b reaches shard0's
// primary through a proxy that is blackholed (its sockets stay open, no
// byte flows), and replay is paused on a replica at the same time. b must
// serve no read beyond MaxLag; its reads of shard0 then fail saying why.
func chaosCutOff(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "One instance cut off from a primary"}
	ctx := context.Background()
	rep, prim := e.node("shard0-replica1"), e.node("shard0-primary")
	port := rep.Port()
	px, err := prim.Proxy(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { px.Close() })
	defer px.Heal()
	defer rep.ResumeReplay(ctx)
	a := e.server("a", 110, nil, nil)
	b := e.server("b", 111, func(topo *app.Topology) {
		for i := range topo.Shards {
			if topo.Shards[i].Name == "shard0" {
				topo.Shards[i].Primary = px.DSN()
			}
		}
	}, nil)

	lr := e.load(0, a)
	stop := e.bystanders(6, b)
	defer stop()
	time.Sleep(e.len.warm)
	px.Blackhole()
	cut := e.mark("instance b's path to shard0-primary blackholed (proxy: sockets open, no bytes)")
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, rep.PauseReplay(ctx))
	paused := e.mark("shard0-replica1: replay paused")
	time.Sleep(e.len.cutoff)
	px.Heal()
	healed := e.mark("instance b's path healed")
	require.NoError(t, rep.ResumeReplay(ctx))
	resumed := e.mark("shard0-replica1: replay resumed")
	e.await(20*time.Second, func() bool { _, ok := b.stats.first(resumed, nodeEligible(port)); return ok })
	time.Sleep(e.len.after)
	r := lr.end(t)
	stop()
	e.clients(res, r)

	fromB := func(r *tracedRead) bool { return r.inst == "b" }
	lc := e.checkReplicaReads(cut.Add(-e.len.warm), healed.Add(e.len.after), chaosMaxLag, fromB)
	lateB := e.trace.readsOf(func(r *tracedRead) bool {
		return r.inst == "b" && r.shard == "shard0" && !r.failed && r.start.After(cut.Add(generous(chaosMaxLag))) && r.start.Before(healed)
	})
	bObs := e.tl.all(allOf(obsRead, toShard("shard0"), func(o *chaosObs) bool {
		return o.src == "bystander" && o.start.After(cut) && o.start.Before(healed)
	}))
	bFailed := filterObs(bObs, (*chaosObs).failed)
	out, outOK := b.stats.first(paused, nodeIneligible(port))
	res.Injected = fmt.Sprintf("instance b's connections to shard0-primary blackholed for %s (a proxy in b's topology; instance a unaffected), replay paused on shard0-replica1 200 ms later", fmtDur(e.len.cutoff))
	res.Saw = fmt.Sprintf("b: %d replica reads checked, %d beyond the lag bound; %d of b's shard0 reads during the cut failed, %d replica reads by b later than %s into the cut",
		lc.reads, lc.beyond, len(bFailed), len(lateB), fmtDur(generous(chaosMaxLag)))
	res.Detect = "replay paused -> out of b's rotation: " + fmtSince(out, paused, outOK)
	back, backOK := b.stats.first(healed, nodeEligible(port))
	res.Recover = "healed -> shard0-replica1 back in b's rotation: " + fmtSince(back, healed, backOK)
	e.expect(res, lc.beyond == 0, "0 reads served by a replica beyond the lag bound from the cut-off instance",
		fmt.Sprintf("%d of %d (largest lag: at most %s, at least %s)", lc.beyond, lc.reads, fmtDur(lc.max), fmtDur(lc.maxFloor)))
	e.expect(res, len(lateB) == 0, fmt.Sprintf("no replica read of shard0 from b later than %s into the cut", fmtDur(generous(chaosMaxLag))),
		fmt.Sprint(len(lateB)))
	e.noteLag(res, lc)
	for _, o := range firstN(bFailed, 3) {
		res.note("a read of b during the cut: %s answered %d at %.3fs: %s", o.route, o.status, o.end.Sub(e.began).Seconds(), o.body)
	}
	res.note("b has no fresh primary position while cut off: the bound on each replica's lag grows with the time since the last one, and the replicas leave b's rotation once it passes MaxLag; b's reads of shard0 then fail (503 naming each replica's reason) rather than serve stale data. Instance a, not cut off, goes on serving.")
	return res
}

// 12. A healthy primary whose sessions are terminated: first every session
// of the library again and again, then, with the primary's connection
// slots taken by other clients, the checker's session repeatedly. No write
// may be refused as "no primary"; writes in flight on a killed session may
// fail, saying so.
func chaosTerminated(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Sessions terminated on a healthy primary"}
	a := e.server("a", 112, nil, nil)
	ctx := context.Background()
	prim := e.node("shard0-primary")

	lr := e.load(0, a)
	time.Sleep(e.len.warm)
	killsFrom := e.mark("terminations begin")
	var sessions int
	for range e.len.kills {
		k, err := superQuery(ctx, prim, terminateSQL)
		require.NoError(t, err)
		sessions += k
		time.Sleep(e.len.killEvery)
	}
	e.mark("%d rounds of pg_terminate_backend on shard0-primary ended %d sessions of the library and the sampler", e.len.kills, sessions)

	// Take the connection slots: open sessions until the server refuses.
	var hogs []*pgx.Conn
	defer func() {
		for _, c := range hogs {
			c.Close(context.Background())
		}
	}()
	var (
		refusal string
		mu      sync.Mutex
		wg      sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for {
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				c, err := pgx.Connect(cctx, prim.DSN())
				cancel()
				mu.Lock()
				if err != nil || len(hogs) >= 200 {
					if err != nil && refusal == "" {
						refusal = err.Error()
					}
					mu.Unlock()
					if c != nil {
						c.Close(context.Background())
					}
					return
				}
				hogs = append(hogs, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	full := e.mark("shard0-primary's connection slots taken: %d sessions of another client, then refused (%s)", len(hogs), string(firstN([]rune(refusal), 80)))
	checkers := 0
	for end := time.Now().Add(e.len.slots); time.Now().Before(end); {
		k, err := superQuery(ctx, prim, checkerSQL)
		require.NoError(t, err)
		checkers += k
		time.Sleep(e.len.killEvery)
	}
	nHogs := len(hogs)
	for _, c := range hogs {
		c.Close(context.Background())
	}
	hogs = nil
	freed := e.mark("%d checker sessions terminated while full; the slots freed", checkers)
	time.Sleep(e.len.after)
	r := lr.end(t)
	e.clients(res, r)

	obs := e.tl.all(nil)
	writes := filterObs(obs, allOf(obsWrite, toShard("shard0"), sentIn(killsFrom, freed)))
	failed := filterObs(writes, (*chaosObs).failed)
	noPrim := filterObs(failed, func(o *chaosObs) bool { return strings.Contains(o.body, "no primary") })
	demoted := 0
	a.stats.each(killsFrom, freed.Add(e.len.after), func(s *statsSample) {
		if s.shard("shard0").primary == "" {
			demoted++
		}
	})
	traced := e.trace.writesOf(func(w *tracedWrite) bool {
		return w.shard == "shard0" && !w.at.Before(killsFrom) && w.at.Before(freed)
	})
	byOutcome := map[replica.WriteOutcome]int{}
	for _, w := range traced {
		byOutcome[w.outcome]++
	}
	inSlots := countObs(failed, func(o *chaosObs) bool { return !o.start.Before(full) })
	res.Injected = fmt.Sprintf("%d rounds of pg_terminate_backend of every library session on shard0-primary, %s apart; then its connection slots taken by another client (%d sessions) and the checker's session terminated every %s for %s",
		e.len.kills, fmtDur(e.len.killEvery), nHogs, fmtDur(e.len.killEvery), fmtDur(e.len.slots))
	res.Saw = fmt.Sprintf("%d writes to shard0 during the faults: %d failed (%d while the slots were taken), %d of them as \"no primary\"; write outcomes traced: %d committed, %d failed, %d unknown; router samples with no primary: %d",
		len(writes), len(failed), inSlots, len(noPrim), byOutcome[replica.WriteCommitted], byOutcome[replica.WriteFailed], byOutcome[replica.WriteUnknown], demoted)
	res.Detect = "n/a (the primary stays up)"
	res.Recover = "n/a"
	e.expectAvailable(res, noPrim, "0 writes refused as \"no primary\" while the primary is up", fmt.Sprintf("%d of %d", len(noPrim), len(writes)))
	unexplained := filterObs(failed, func(o *chaosObs) bool {
		for _, why := range []string{"ended the session", "terminating connection", "outcome unknown"} {
			if strings.Contains(o.body, why) {
				return false
			}
		}
		return true
	})
	e.expectAvailable(res, unexplained, "every failed write says its session was ended or its outcome is unknown",
		fmt.Sprintf("%d of %d failed writes say something else", len(unexplained), len(failed)))
	e.expect(res, demoted == 0 || e.checkTimeouts() > 0, "the primary never demoted", fmt.Sprintf("%d router samples without a primary", demoted))
	bodies := map[string]int{}
	for _, o := range failed {
		bodies[fmt.Sprintf("%d %s", o.status, string(firstN([]rune(o.body), 120)))]++
	}
	for _, b := range slices.Sorted(maps.Keys(bodies)) {
		res.note("a failed write (%d x): %s", bodies[b], b)
	}
	res.note("Sessions ended: %d in the first phase; %d checker sessions while the slots were taken (at %.3fs).", sessions, checkers, full.Sub(e.began).Seconds())
	res.note("A write in flight on a killed session may fail: it says the server ended the session (nothing committed) or that its outcome is unknown (504), never \"no primary\".")
	return res
}

// 13. A topology that lists shard0's replica under shard1: it must be
// refused (never serve shard1, refusal traced and logged), no user answered
// 201 then 404, no post twice in /posts/recent.
func chaosForeignReplica(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "A replica of another shard in the topology"}
	foreign := e.node("shard0-replica1")
	port := foreign.Port()
	a := e.server("a", 113, func(topo *app.Topology) {
		for i := range topo.Shards {
			sh := &topo.Shards[i]
			switch sh.Name {
			case "shard0":
				sh.Replicas = slices.DeleteFunc(sh.Replicas, func(d string) bool { return d == foreign.DSN() })
			case "shard1":
				sh.Replicas[len(sh.Replicas)-1] = foreign.DSN()
			}
		}
	}, nil)
	e.mark("instance a started with shard0-replica1 listed as a replica of shard1, not of shard0")
	lr := e.load(0, a)
	stop := e.bystanders(4, a)
	defer stop()
	time.Sleep(e.len.warm)
	if e.len.full {
		time.Sleep(e.len.after)
	}
	c := e.client("feed")
	var feeds, dupFeeds, dups int
	for range 10 {
		st, _, body := c.send(a, "GET", "GET /posts/recent", "/posts/recent?limit=50", nil)
		if st != http.StatusOK {
			continue
		}
		var feed struct {
			Posts []struct {
				ID string `json:"id"`
			} `json:"posts"`
		}
		require.NoError(t, json.Unmarshal(body, &feed))
		feeds++
		seen := map[string]bool{}
		d := 0
		for _, p := range feed.Posts {
			if seen[p.ID] {
				d++
			}
			seen[p.ID] = true
		}
		dups += d
		if d > 0 {
			dupFeeds++
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := lr.end(t)
	stop()
	e.clients(res, r)

	refused := e.trace.nodeEvents(func(n *tracedNode) bool {
		return n.ev.Kind == replica.NodeRefused && n.ev.Shard == "shard1" && portOf(n.ev.Node) == port
	})
	served := e.trace.readsOf(func(r *tracedRead) bool { return r.shard == "shard1" && r.port == port && !r.failed })
	eligible := 0
	var reason, why string
	a.stats.each(e.began, time.Now(), func(s *statsSample) {
		for _, n := range s.nodes {
			if n.shard == "shard1" && n.port == port {
				if n.eligible {
					eligible++
				}
				reason, why = n.reason, n.err
			}
		}
	})
	logged := strings.Contains(a.logs.String(), "refused")
	res.Injected = "instance a's topology lists shard0-replica1 as shard1's second replica (and not under shard0)"
	res.Saw = fmt.Sprintf("refusals traced: %d; shard1 reads served by it: %d; router samples showing it eligible: %d; %d /posts/recent answers with a post twice of %d", len(refused), len(served), eligible, dupFeeds, feeds)
	res.Detect = "at the first check"
	res.Recover = "n/a"
	e.expect(res, len(refused) > 0, "the foreign replica refused (traced)", fmt.Sprintf("%d refusal events; last reason %q: %s", len(refused), reason, why))
	e.expect(res, len(served) == 0 && eligible == 0, "it never serves shard1", fmt.Sprintf("%d reads, %d samples eligible", len(served), eligible))
	e.expect(res, logged, "the refusal is logged", fmt.Sprint(logged))
	e.expect(res, dups == 0 && feeds > 0, "no post twice in /posts/recent", fmt.Sprintf("%d duplicates in %d feeds", dups, feeds))
	if len(refused) > 0 {
		res.note("The refusal, as traced: %s", refused[0].ev.Err)
	}
	res.note("201 then 404 (a user created on shard1 then not found) would be a read-your-writes violation of loadgen's checker: see the first expectation.")
	return res
}

// 14. A replica frozen (SIGSTOP) under reads: a read costs at most about a
// second more (the attempt timeout, then another node), and none fails
// while the primary is up.
func chaosFrozenReplica(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Frozen replica"}
	a := e.server("a", 114, nil, nil)
	ctx := context.Background()
	n := e.node("shard0-replica1")
	port := n.Port()

	lr := e.load(0, a)
	stop := e.bystanders(4, a)
	defer stop()
	time.Sleep(e.len.warm)
	require.NoError(t, n.FreezeForTest(ctx, t))
	frozen := e.mark("shard0-replica1 frozen (SIGSTOP to the postmaster and every backend)")
	time.Sleep(e.len.down)
	require.NoError(t, n.Thaw(ctx))
	thawed := e.mark("shard0-replica1 thawed (SIGCONT)")
	e.await(20*time.Second, func() bool { _, ok := a.stats.first(thawed, nodeEligible(port)); return ok })
	time.Sleep(e.len.after)
	r := lr.end(t)
	stop()
	e.clients(res, r)

	obs := e.tl.all(nil)
	during := filterObs(obs, allOf(obsRead, sentIn(frozen, thawed)))
	failed := filterObs(obs, allOf(obsRead, (*chaosObs).failed))
	lat := make([]time.Duration, len(during))
	for i, o := range during {
		lat[i] = o.end.Sub(o.start)
	}
	slices.Sort(lat)
	var p99, worst time.Duration
	if len(lat) > 0 {
		p99, worst = lat[len(lat)*99/100], lat[len(lat)-1]
	}
	moved := e.trace.readsOf(func(r *tracedRead) bool {
		return r.port == port && r.failed && r.start.After(frozen.Add(-time.Second)) && r.start.Before(thawed)
	})
	out, outOK := a.stats.first(frozen, nodeIneligible(port))
	back, backOK := a.stats.first(thawed, nodeEligible(port))
	res.Injected = fmt.Sprintf("shard0-replica1 frozen (SIGSTOP) for %s under reads, then thawed", fmtDur(e.len.down))
	res.Saw = fmt.Sprintf("%d reads sent during the freeze: p99 %s, max %s; %d failed reads in all; %d attempts on the frozen replica abandoned", len(during), fmtDur(p99), fmtDur(worst), len(failed), len(moved))
	res.Detect = "freeze -> out of rotation: " + fmtSince(out, frozen, outOK)
	res.Recover = "thaw -> back in rotation: " + fmtSince(back, thawed, backOK)
	const want = 1250 * time.Millisecond
	e.expectWithin(res, "a read during the freeze takes at most ~1 s (attempt timeout 1 s, then another node)", worst, want, generous(want), len(during) > 0)
	e.expectAvailable(res, failed, "0 failed reads while the primary is up", fmt.Sprint(len(failed)))
	for _, o := range firstN(failed, 3) {
		res.note("a failed read: %s answered %d at %.3fs: %s", o.route, o.status, o.end.Sub(e.began).Seconds(), o.body)
	}
	res.note("Reads during the freeze: every client read sent between the freeze and the thaw, whatever node served it; p99 and max of their latency as the client saw it.")
	return res
}
