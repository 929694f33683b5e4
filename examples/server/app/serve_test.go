package app

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/stretchr/testify/require"
)

// The whole command path: flags, -config, listen, banner, serve, and a
// clean return when the context ends (as on SIGINT).
func TestServeWithConfigUntilCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "topology.yaml")
	require.NoError(t, WriteTopology(path, testTopology()))
	serveUntilCancelled(t, "-config", path, "-listen", "127.0.0.1:0", "-log-level", "warn")
}

// Dev mode, as go run ./examples/server starts it, on a small cluster of
// its own: it starts, serves, writes its topology, and stops the cluster.
func TestServeDevClusterUntilCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "topology.yaml")
	serveUntilCancelled(t, "-shards", "1", "-replicas", "0", "-listen", "127.0.0.1:0", "-write-topology", path)
	topo, err := LoadTopology(path)
	require.NoError(t, err, "the written topology does not load")
	if assert.Len(t, topo.Shards, 1, "written topology %+v: want one shard owning -", topo.Shards) {
		assert.Equal(t, "-", topo.Shards[0].Range, "written topology %+v: want one shard owning -", topo.Shards)
	}
}

func serveUntilCancelled(t *testing.T, args ...string) {
	t.Helper()
	f, err := ParseFlags(args, io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, f, stdout, stderr) }()

	url := regexp.MustCompile(`server on (http://127\.0\.0\.1:\d+)`)
	var base string
	for deadline := time.Now().Add(60 * time.Second); base == ""; time.Sleep(10 * time.Millisecond) {
		if m := url.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		select {
		case err := <-done:
			require.FailNowf(t, "serve returned early", "serve returned early: %v; stderr: %s", err, stderr.String())
		default:
		}
		require.False(t, time.Now().After(deadline), "no banner within 60s (a dev cluster, its topology store and a router to start on a loaded machine): %q", stdout.String())
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(base + p)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode, "GET %s", p)
	}
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "serve")
	case <-time.After(15 * time.Second):
		require.FailNow(t, "serve did not return within 15s of the cancellation")
	}
	out := stdout.String() + stderr.String()
	assert.NotContains(t, out, testPassword, "the output shows the password")
	for _, s := range []string{"dashboard", "/debug/shards", "shard0", "shutting down"} {
		assert.Containsf(t, out, s, "output lacks %q:\n%s", s, out)
	}
}
