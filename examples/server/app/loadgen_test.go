package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/loadgen"
)

// loadDuration is how long TestLoadgenFindsNoViolations drives load.
const loadDuration = 10 * time.Second

// A short loadgen run against two instances on the same shards, requests
// alternating between them as behind a load balancer: every client's reads
// show its own writes, and every acknowledged write is there at the end.
func TestLoadgenFindsNoViolations(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 10 s load run")
	}
	a := start(t, nil, Options{NodeID: 11})
	b := start(t, nil, Options{NodeID: 12})
	var progress strings.Builder
	rep, err := loadgen.Run(context.Background(), loadgen.Options{
		Targets:     []string{a.http.URL, b.http.URL},
		Duration:    loadDuration,
		Concurrency: 16,
		Users:       400,
		ReadPercent: 80,
		Seed:        1,
		Progress:    &progress,
	})
	require.NoError(t, err)
	var out strings.Builder
	rep.Write(&out)
	t.Log(out.String())
	assert.False(t, rep.Failed(), "%d consistency violations", rep.Violations())
	assert.False(t, rep.Requests < 500 || rep.Checks < 100 || rep.Verify.Users == 0 || rep.Verify.Posts == 0,
		"too little load to mean anything: %d requests, %d checked reads, %d users and %d posts verified",
		rep.Requests, rep.Checks, rep.Verify.Users, rep.Verify.Posts)
	for status, n := range rep.ByStatus {
		assert.False(t, status == 0 || status >= 500, "%d answers with status %d (0: transport error), such as %s", n, status, rep.ErrorBody[status])
	}
	if t.Failed() {
		t.Logf("instance A's log:\n%s\ninstance B's log:\n%s", a.logs.String(), b.logs.String())
	}
	assert.Containsf(t, progress.String(), "req/s", "no progress line: %q", progress.String())
}
