package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/topology"
)

// chaosLogical names the scenarios whose cluster runs wal_level = logical.
var chaosLogical = map[string]bool{"ReshardUnderLoad": true}

// 15. Reshard under load: the server follows a topology store; four empty
// shards are added to the running cluster, and each half of the keyspace
// is split onto two of them with package reshard (copy under a slot's
// snapshot, streaming, verify, switch-writes, complete) while loadgen
// runs. No request fails (writes refused by a source's fence wait at the
// router for the new map), no acknowledged write is lost, no
// read-your-writes is broken, and verify finds the targets equal to the
// sources.
func chaosReshard(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Reshard under load (2 shards split into 4)"}
	ctx := context.Background()
	for _, n := range []string{"shard0-primary", "shard1-primary"} {
		// The app's role reads the sources' logical stream.
		require.NoError(t, e.node(n).SuperExec(ctx, "ALTER ROLE pgshard REPLICATION"))
	}
	store, _ := e.store("chaos_control")
	a := e.storeServer("a", 115, store)
	lr := e.load(0, a)
	time.Sleep(e.len.warm)

	hide := func(dsn string) string { return strings.Replace(dsn, ":"+testPassword+"@", ":${CHAOS_PW}@", 1) }
	var targets []string
	for range 4 {
		sh, err := e.c.AddShard(ctx, 0)
		require.NoError(t, err)
		// The targets stream their changes back to the sources after the switch.
		require.NoError(t, sh.Primary.SuperExec(ctx, "ALTER ROLE pgshard REPLICATION"))
		targets = append(targets, hide(sh.Primary.DSN()))
	}
	e.mark("4 empty shards added to the running cluster")
	for _, tb := range []topology.Table{{Name: "users", Key: "id"}, {Name: "posts", Key: "user_id"},
		{Name: "user_emails", Key: "key"}, {Name: "idempotency_keys", Key: "key"}, {Name: "user_emails_claims", Reference: true}} {
		_, err := store.AddTable(ctx, tb, topology.TableOptions{Lookup: e.lookup})
		require.NoError(t, err)
	}
	m := reshard.New(store, reshard.Options{Lookup: e.lookup, StatusInterval: 100 * time.Millisecond, RetryInterval: 200 * time.Millisecond})
	specs := []reshard.Spec{
		{Name: "split0", Source: "-80", Targets: []reshard.Target{{Range: "-40", Primary: targets[0]}, {Range: "40-80", Primary: targets[1]}}},
		{Name: "split1", Source: "80-", Targets: []reshard.Target{{Range: "80-c0", Primary: targets[2]}, {Range: "c0-", Primary: targets[3]}}},
	}
	runCtx, stopRuns := context.WithCancel(ctx)
	var runs sync.WaitGroup
	runErrs := make([]error, len(specs))
	defer func() { stopRuns(); runs.Wait() }()
	for i, sp := range specs {
		_, err := m.Create(ctx, sp)
		require.NoError(t, err)
		runs.Go(func() { runErrs[i] = m.Run(runCtx, sp.Name) })
	}
	e.mark("workflows created: copying")
	for _, sp := range specs {
		require.True(t, e.await(2*time.Minute, func() bool {
			st, err := m.Get(ctx, sp.Name)
			return err == nil && st.Phase == reshard.PhaseStreaming
		}), "%s never streamed", sp.Name)
	}
	e.mark("both copies done: streaming")
	time.Sleep(e.len.warm)

	var diffs []string
	for _, sp := range specs {
		rep, err := m.Verify(ctx, sp.Name, reshard.VerifyOptions{Timeout: time.Minute})
		require.NoError(t, err)
		for _, d := range rep.Diffs {
			diffs = append(diffs, fmt.Sprintf("%s: %s on %s at %s: %s", sp.Name, d.Table, d.Target, d.Key, d.Problem))
		}
		var rows int64
		for _, tc := range rep.Tables {
			for _, n := range tc.Targets {
				rows += n
			}
		}
		res.note("verify %s under load: %d rows on the targets, compared at source position %s", sp.Name, rows, rep.Position)
	}
	e.mark("verify done: %d differences", len(diffs))

	type window struct{ from, to time.Time }
	var switches []window
	var took []string
	for _, sp := range specs {
		from := e.mark("switch-writes %s", sp.Name)
		st, err := m.SwitchWrites(ctx, sp.Name, reshard.SwitchOptions{MaxLag: generous(time.Second), Timeout: 30 * time.Second, By: "chaos suite"})
		require.NoError(t, err)
		to := e.mark("%s switched: map version %d", sp.Name, st.SwitchedVersion)
		switches = append(switches, window{from, to})
		took = append(took, fmt.Sprintf("%s %s", sp.Name, fmtDur(to.Sub(from))))
		e.await(20*time.Second, func() bool { return a.r.Stats().Map.Version >= st.SwitchedVersion })
	}
	time.Sleep(e.len.after)
	rep := lr.end(t)
	for _, sp := range specs {
		_, err := m.Complete(ctx, sp.Name)
		require.NoError(t, err)
	}
	e.mark("workflows completed: slots and publications dropped")
	runs.Wait() // each Run ends once its workflow is completed
	for i, err := range runErrs {
		require.NoError(t, err, "run %s", specs[i].Name)
	}
	e.clients(res, rep)

	failed := e.tl.all((*chaosObs).failed)
	writes := filterObs(failed, obsWrite)
	e.expectAvailable(res, writes, "0 writes fail: they wait across the switch", fmt.Sprintf("%d of %d failed requests", len(writes), len(failed)))
	reads := filterObs(failed, obsRead)
	e.expectAvailable(res, reads, "0 reads fail", fmt.Sprintf("%d of %d failed requests", len(reads), len(failed)))
	e.expect(res, len(diffs) == 0, "verify clean: the targets hold exactly the sources' rows", fmt.Sprintf("%d differences %v", len(diffs), diffs))
	var lat []time.Duration
	for _, w := range switches {
		for _, o := range e.tl.all(allOf(obsWrite, sentIn(w.from, w.to))) {
			lat = append(lat, o.end.Sub(o.start))
		}
	}
	slices.Sort(lat)
	p99, found := time.Duration(0), len(lat) > 0
	if found {
		p99 = lat[len(lat)*99/100]
	}
	e.expectWithin(res, "write pause at the switch: p99 of the writes sent during a switch-writes ≤ 1 s", p99, time.Second, generous(time.Second), found)

	res.Injected = "4 shards added to the running cluster; -80 split onto -40 and 40-80, 80- onto 80-c0 and c0- (create, copy, stream, verify, switch-writes, complete) while loadgen ran"
	res.Saw = fmt.Sprintf("%d requests, %d failed; %d writes sent during the switches (p99 %s, slowest %s)", res.Requests, len(failed), len(lat), fmtDur(p99), fmtDur(maxLatencyOf(lat)))
	res.Detect = "switch-writes (lag check, fence, wait for the targets, map N+1): " + strings.Join(took, ", ")
	res.Recover = fmt.Sprintf("the server serves map version %d with 4 shards", a.r.Stats().Map.Version)
	res.note("Each source's primary refuses, inside the write's transaction (SQLSTATE PGS01), a write routed with the old map once fenced; the router reloads and retries on the new owner within FenceWait (10 s). The copy and the stream route every row by the xxhash64 of its key; idempotency keys and email lookup rows move with their keys, the claims table as a reference table.")
	return res
}

func maxLatencyOf(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[len(lat)-1]
}
