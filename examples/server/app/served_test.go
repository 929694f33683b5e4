package app

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// served is the whole command (flags, -config, listen, serve) running in
// this process until the test ends, with everything it printed kept.
type served struct {
	base           string // http://127.0.0.1:port
	stdout, stderr *syncBuffer
	stop           func() error // cancels, as SIGINT would, and waits for serve to return
}

// serveConfig writes the shared cluster's topology to a file and serves it
// with the given extra flags.
func serveConfig(t *testing.T, args ...string) *served {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.yaml")
	require.NoError(t, WriteTopology(path, testTopology()))
	return serveArgs(t, append([]string{"-config", path, "-listen", "127.0.0.1:0"}, args...)...)
}

// serveArgs runs serve with args and waits for its banner.
func serveArgs(t *testing.T, args ...string) *served {
	t.Helper()
	f, err := ParseFlags(args, io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, f, s.stdout, s.stderr) }()
	var once bool
	var result error
	s.stop = func() error {
		if once {
			return result
		}
		once = true
		cancel()
		select {
		case result = <-done:
		case <-time.After(15 * time.Second):
			require.FailNow(t, "serve did not return within 15s of the cancellation")
		}
		return result
	}
	t.Cleanup(func() { s.stop() })

	url := regexp.MustCompile(`server on (http://127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := url.FindStringSubmatch(s.stdout.String()); m != nil {
			s.base = m[1]
			return s
		}
		select {
		case err := <-done:
			once, result = true, err
			require.FailNowf(t, "serve returned early", "serve returned early: %v; stderr: %s", err, s.stderr.String())
		default:
		}
		require.False(t, time.Now().After(deadline), "no banner within 20s: %q", s.stdout.String())
	}
}

// runArgs is the command's main: parse args, run until the server fails,
// and answer the exit status, printing the error as the command does.
func runArgs(args []string, stdout, stderr io.Writer) int {
	f, err := ParseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 2
	}
	if err := Run(context.Background(), f, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 1
	}
	return 0
}
