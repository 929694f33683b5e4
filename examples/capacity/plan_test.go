package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlan(t *testing.T) {
	// 1000 requests (100 writes) in 10 s; 2 s of app CPU, 0.5 s on primaries, 1 s on replicas.
	m := Measurement{Seconds: 10, Requests: 1000, Writes: 100, AppCPU: 2, PrimaryCPU: 0.5, ReplicaCPU: 1,
		CacheHits: 300, CacheMisses: 100, Instances: 3, Shards: 2, ReplicasPer: 2}
	a := Assumptions{Users: 1_000_000, RPM: 10, Peak: 3, AppCores: 4, DBCores: 8, Headroom: 0.7, MinReplicas: 2, MinAppServers: 3}
	p, err := plan(m, a)
	require.NoError(t, err)
	assert.InDelta(t, 166_666.7, p.AvgRPS, 0.1)
	assert.InDelta(t, 500_000, p.PeakRPS, 0.1)
	assert.InDelta(t, 500, p.AppRPSPerCore, 1e-9)        // 1000 requests / 2 s
	assert.InDelta(t, 200, p.WritesPerPrimaryCore, 1e-9) // 100 / 0.5 s
	assert.InDelta(t, 900, p.ReadsPerReplicaCore, 1e-9)  // 900 / 1 s
	assert.InDelta(t, 0.75, p.HitRatio, 1e-9)
	assert.InDelta(t, 500_000/500/0.7, p.AppCoresNeeded, 1e-6)
	assert.Equal(t, 358, p.AppInstances) // ceil(1428.6 / 4)
	assert.Equal(t, 45, p.Shards)        // ceil(50,000 writes/s / 200 / 0.7 / 8) = ceil(44.6)
	assert.Equal(t, 2, p.ReplicasPerShard)

	doc := render(m, a, p, "go run ./examples/capacity -users 1000000 -rpm 10 -peak 3")
	for _, want := range []string{"**358** x 4 cores", "**45 shards**", "**2 per shard** (90 in all)", "75.0%"} {
		assert.Contains(t, doc, want)
	}
	assert.False(t, strings.Contains(doc, "%!"), "a formatting verb went wrong:\n%s", doc)
}

func TestPlanRefusesEmptyFigures(t *testing.T) {
	a := Assumptions{Users: 1, RPM: 1, Peak: 1, AppCores: 1, DBCores: 1, Headroom: 0.7}
	for name, m := range map[string]Measurement{
		"no load":        {Seconds: 10, AppCPU: 1, PrimaryCPU: 1, ReplicaCPU: 1},
		"no replica CPU": {Seconds: 10, Requests: 5, AppCPU: 1, PrimaryCPU: 1},
	} {
		_, err := plan(m, a)
		assert.Error(t, err, name)
	}
	_, err := plan(Measurement{Seconds: 1, Requests: 1, AppCPU: 1, PrimaryCPU: 1, ReplicaCPU: 1}, Assumptions{Users: 1, RPM: 1, Peak: 1, AppCores: 1, DBCores: 1, Headroom: 1.5})
	assert.Error(t, err, "headroom over 1")
}
