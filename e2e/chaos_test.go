package e2e

import (
	"cmp"
	"context"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

// The chaos suite: the reference server under loadgen on a dev cluster of
// 2 shards x (1 primary + 2 replicas), a fault injected through pgcluster,
// and assertions on what the clients saw. A short version of each scenario
// runs with every `go test`; the full one with -chaos=full (make chaos),
// which with -chaos.report writes RELIABILITY.md.
var (
	chaosMode = flag.String("chaos", "", "chaos suite length: short (the default) or full; "+
		"default $"+envChaos)
	chaosReportPath = flag.String("chaos.report", "", "write the chaos suite's results as markdown to this file, "+
		"relative to the module root; default $"+envChaosReport)
)

const (
	envChaos       = "PGSHARD_CHAOS"
	envChaosReport = "PGSHARD_CHAOS_REPORT"
)

// chaosScenario is one fault and what is expected of the clients under it.
type chaosScenario struct {
	id   int
	name string // the subtest's name
	run  func(t *testing.T, e *chaosEnv) *chaosResult
}

var chaosScenarios = []chaosScenario{
	{1, "LagStorm", chaosLagStorm},
	{2, "ReplicaCrash", chaosReplicaCrash},
	{3, "PrimaryCrash", chaosPrimaryCrash},
	{4, "Failover", chaosFailover},
	{5, "ListenerLoss", chaosListenerLoss},
	{6, "ConnectionExhaustion", chaosExhaustion},
	{7, "SlowReplica", chaosSlowReplica},
	{8, "TopologyChange", chaosTopologyChange},
	{9, "FrozenPrimary", chaosFrozenPrimary},
	{10, "PrimaryBlipWhilePaused", chaosLagBlip},
	{11, "CutOffInstance", chaosCutOff},
	{12, "TerminatedSessions", chaosTerminated},
	{13, "ForeignReplica", chaosForeignReplica},
	{14, "FrozenReplica", chaosFrozenReplica},
	{15, "ReshardUnderLoad", chaosReshard},
}

// TestChaos runs every scenario in turn, each on a cluster of its own (one
// starts in about a second).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the chaos suite")
	}
	lengths := chaosShort
	if mode := cmp.Or(*chaosMode, os.Getenv(envChaos)); mode == "full" {
		lengths = chaosFull
	} else if mode != "" && mode != "short" {
		t.Fatalf("-chaos=%q: want short or full", mode)
	}
	began := time.Now()
	var (
		results []*chaosResult
		servers string // the clusters' PostgreSQL, as pgcluster describes it
	)
	for _, sc := range chaosScenarios {
		t.Run(sc.name, func(t *testing.T) {
			c := startChaosCluster(t, chaosLogical[sc.name])
			servers = c.String()
			e := newChaosEnv(t, sc.name, c, lengths)
			res := sc.run(t, e)
			require.Positive(t, e.trace.attempts(), "the library's Tracer reported no read attempt: the checks of replica reads would hold vacuously")
			res.ID, res.Command, res.Elapsed = sc.id, chaosCommand(sc.name), time.Since(e.began)
			res.note("Faults and repairs, from the scenario's start: %s.", e.eventsText())
			results = append(results, res)
			e.logResult(res)
		})
	}
	path := cmp.Or(*chaosReportPath, os.Getenv(envChaosReport))
	if path == "" {
		return
	}
	require.NoError(t, writeChaosReport(path, results, lengths, servers, time.Since(began)))
	t.Logf("chaos report written to %s", path)
}

// startChaosCluster starts the dev cluster the issue prescribes: 2 shards,
// each a primary and 2 streaming replicas.
func startChaosCluster(t *testing.T, logical bool) *pgcluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := pgcluster.Options{Shards: 2, Replicas: 2, Password: testPassword}
	if logical {
		o = o.Logical()
	}
	c, err := pgcluster.Start(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, c.Close())
	})
	t.Logf("chaos cluster: %v, ready in %v", c, c.StartupTime().Round(time.Millisecond))
	return c
}
