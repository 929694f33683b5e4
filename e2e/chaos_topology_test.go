package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/examples/server/app"
	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/topology"
)

// 8. Topology change under load: the server follows a topology store (in
// shard1's primary). Under load, shard0's second replica leaves the map
// and comes back; then shard0's primary moves to its first replica the
// way an operator switches over: fence shard0 (routers hold its writes),
// let the replica catch up, stop the old primary, promote the replica,
// record it as the primary and open the shard. No request fails and no
// acknowledged write is lost.
func chaosTopologyChange(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Topology change under load (replica removed and added, switchover)"}
	ctx := context.Background()
	p, r1 := e.node("shard0-primary"), e.node("shard0-replica1")
	defer p.Start(ctx)
	store, m := e.store("chaos_control")
	// Short leases on shard0, so that its last fence is relaxed (its
	// triggers removed by the router) while the load runs.
	const lease = 500 * time.Millisecond
	onP := e.conn(p)
	require.NoError(t, topology.InstallFence(ctx, onP, topology.FenceState{Shard: "shard0", Lease: lease}, 5*time.Second))
	_, err := topology.RelaxFence(ctx, onP, 5*time.Second)
	require.NoError(t, err)
	a := e.storeServer("a", 108, store)

	lr := e.load(0, a)
	stop := e.bystanders(3, a)
	defer stop()
	time.Sleep(e.len.warm)

	apply := func(why string) int64 {
		plan, err := store.Apply(ctx, m, topology.ApplyOptions{By: "chaos suite", Reason: why, Lookup: e.lookup, Lease: lease})
		require.NoError(t, err)
		e.await(20*time.Second, func() bool { return a.r.Stats().Map.Version >= plan.To.Version })
		e.mark("map version %d served: %s", plan.To.Version, why)
		return plan.To.Version
	}
	rep2 := m.Shards[0].Replicas[1]
	require.NoError(t, m.RemoveReplica("shard0", rep2))
	apply("shard0-replica2 leaves the map")
	time.Sleep(e.len.warm)
	require.NoError(t, m.AddReplica("shard0", rep2))
	apply("shard0-replica2 comes back")
	time.Sleep(e.len.warm)

	require.NoError(t, m.SetState("shard0", topology.StateFenced))
	fencing := e.mark("fencing shard0 for the switchover")
	apply("switchover: shard0 fenced")
	require.NoError(t, r1.WaitCaughtUp(ctx, p))
	stopping := e.mark("stopping shard0-primary (fast shutdown)")
	require.NoError(t, p.Stop(ctx))
	e.mark("shard0-primary stopped")
	require.NoError(t, r1.Promote(ctx))
	e.mark("shard0-replica1 promoted")
	require.NoError(t, m.SetPrimary("shard0", m.Shards[0].Replicas[0]))
	require.NoError(t, m.RemoveReplica("shard0", m.Shards[0].Replicas[0])) // the old primary, stopped
	require.NoError(t, m.RemoveReplica("shard0", rep2))                    // it follows the old primary
	require.NoError(t, m.SetState("shard0", topology.StateServing))
	opening := time.Now()
	apply("switchover: shard0-replica1 is the primary, shard0 open")
	e.await(20*time.Second, e.acked("shard0", opening))
	onR1 := e.conn(r1)
	relaxed := e.await(30*time.Second, func() bool {
		st, _, err := topology.ReadFence(ctx, onR1)
		var triggers int
		err2 := onR1.QueryRow(ctx, "SELECT count(*) FROM pg_trigger WHERE tgname = 'pgshard_fence'").Scan(&triggers)
		return err == nil && err2 == nil && !st.RelaxedAt.IsZero() && triggers == 0
	})
	require.True(t, relaxed, "the router relaxes shard0's fence two leases after the map that opens it")
	e.mark("shard0's fence relaxed by the router (its triggers removed)")
	time.Sleep(e.len.after)
	rep := lr.end(t)
	stop()
	e.clients(res, rep)

	failed := e.tl.all((*chaosObs).failed)
	writes := filterObs(failed, func(o *chaosObs) bool { return o.write })
	e.expectAvailable(res, writes, "no write fails while the map changes", fmt.Sprintf("%d of %d failed requests", len(writes), len(failed)))
	// Reads go on through the switchover on the old map's nodes; one that
	// the old primary was serving as it shut down may fail. So may one
	// sent before the router has the map that opens shard0, once the old
	// primary's last position is MaxLag old: its replicas' staleness is no
	// longer proven, and the read says so ("no eligible replica").
	late := filterObs(failed, func(o *chaosObs) bool {
		return !o.write && (o.end.Before(stopping) || o.start.After(opening) && !strings.Contains(o.body, "no eligible replica"))
	})
	e.expectAvailable(res, late, "no read fails but while the old primary shuts down", fmt.Sprintf("%d of %d failed requests", len(late), len(failed)))
	held := e.tl.all(allOf(toShard("shard0"), obsWrite, sentIn(fencing, opening)))
	back, backOK := e.tl.firstEnd(allOf(toShard("shard0"), obsWrite, (*chaosObs).ok, func(o *chaosObs) bool { return !o.start.Before(opening) }))
	e.expectWithin(res, "writes of shard0 acknowledged within 2 s of the map that opens it", back.end.Sub(opening), 2*time.Second, generous(2*time.Second), backOK)
	res.Detect = fmt.Sprintf("fence -> switchover done in %s; %d writes of shard0 sent meanwhile, held by the router (the slowest answered in %s)",
		fmtDur(opening.Sub(fencing)), len(held), fmtDur(maxLatency(held)))
	res.Recover = "map that opens shard0 -> first write acknowledged: " + fmtSince(back.end, opening, backOK)
	res.Injected = "shard0-replica2 removed from the map and added back; then a switchover of shard0 to shard0-replica1 (fence, catch up, stop, promote, set-primary, open), all through the topology store"
	res.Saw = fmt.Sprintf("%d requests, %d failed (%d writes); writes of shard0 waited in the router while it was fenced", res.Requests, len(failed), len(writes))
	if n := len(failed) - len(writes); n > 0 {
		res.note("%d reads of shard0 failed as its old primary shut down: a read the replica set sent to the primary (read-your-writes past the replicas' known positions, or the fallback) fails with it rather than going to a replica.", n)
	}
	res.note("The router follows the store (LISTEN, a 1 s poll); a write it sends to a fenced shard is refused inside its transaction (SQLSTATE PGS01) and retried on the newest map within FenceWait (10 s); a write to a shard whose map state is fenced waits without being sent.")
	res.note("Leases of %s: two leases after the map that opens shard0, the router removed the fence's triggers from shard0's tables while the load ran (counted in the failures above).", lease)
	return res
}

// store makes a control database on shard1's primary and stores the
// cluster's map in it, each DSN's password named as a variable.
func (e *chaosEnv) store(db string) (*topology.Store, *topology.Map) {
	t := e.t
	t.Helper()
	ctx := context.Background()
	host := e.node("shard1-primary")
	require.NoError(t, host.SuperExec(ctx, "CREATE DATABASE "+db+" OWNER pgshard"))
	hide := func(dsn string) string { return strings.Replace(dsn, ":"+testPassword+"@", ":${CHAOS_PW}@", 1) }
	m := &topology.Map{}
	for _, sh := range app.DevTopology(e.c).Shards {
		s := topology.Shard{Name: sh.Name, Range: sh.Range, Primary: hide(sh.Primary)}
		for _, r := range sh.Replicas {
			s.Replicas = append(s.Replicas, hide(r))
		}
		m.Shards = append(m.Shards, s)
	}
	u := strings.Replace(host.DSN(), "/pgshard?", "/"+db+"?", 1)
	store, err := topology.Open(ctx, u)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	require.NoError(t, store.Init(ctx))
	_, err = store.Apply(ctx, m, topology.ApplyOptions{By: "chaos suite", Reason: "the cluster", Lookup: e.lookup})
	require.NoError(t, err)
	cur, err := store.Current(ctx)
	require.NoError(t, err)
	return store, cur.Clone()
}

func (e *chaosEnv) lookup(name string) (string, bool) {
	if name == "CHAOS_PW" {
		return testPassword, true
	}
	return "", false
}

// storeServer is server for an instance whose router follows store.
func (e *chaosEnv) storeServer(name string, nodeID int64, store *topology.Store) *chaosInstance {
	t := e.t
	t.Helper()
	topo := app.DevTopology(e.c)
	logs := &syncBuffer{}
	red := app.NewRedactor(topo)
	log := slog.New(red.Handler(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	cfg := topo.RouterConfig(log)
	cfg.Tracer = e.trace.tracer(name)
	cfg.Shards, cfg.Store, cfg.Lookup, cfg.PollInterval = nil, store, e.lookup, time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := router.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	srv, err := app.New(ctx, r, app.Options{NodeID: nodeID, Logger: log, Redactor: red, Cache: topo.Cache,
		MaxLag: topo.MaxLag(), Instance: name, RequestTimeout: chaosRequestTimeout})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	for _, sh := range e.c.Shards() {
		for _, rep := range sh.Replicas {
			require.NoError(t, rep.WaitCaughtUp(ctx, sh.Primary))
		}
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	waitListening(t, r)
	in := &chaosInstance{name: name, r: r, srv: srv, url: hs.URL, logs: logs, stats: sampleStats(r, 5*time.Millisecond)}
	t.Cleanup(in.stats.stop)
	e.mu.Lock()
	e.instances = append(e.instances, in)
	e.mu.Unlock()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("instance %s's log (end):\n%s", name, lastLines(logs.String(), 60))
		}
	})
	return in
}

// conn connects to n as a plain client for the scenario's checks.
func (e *chaosEnv) conn(n *pgcluster.Node) *pgx.Conn {
	e.t.Helper()
	c, err := pgx.Connect(context.Background(), n.DSN())
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
