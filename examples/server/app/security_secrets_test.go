package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/stretchr/testify/require"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/internal/loadgen"
)

// A role of its own, with a password that every escaping (URL userinfo,
// path, query, key=value quoting) writes differently. secretCore is in
// each of those forms, so finding it finds any of them, or part of one.
const (
	secretRole = "pgshard_secret"
	secretCore = "Zq7xWv9K"
	secretPW   = secretCore + `:s3c@R/t?%20 'q\&+#`
)

// secretForms are the ways the password may be written.
func secretForms() map[string]string {
	userinfo := strings.TrimPrefix(url.UserPassword(secretRole, secretPW).String(), secretRole+":")
	return map[string]string{
		"raw": secretPW, "URL userinfo": userinfo, "URL path": url.PathEscape(secretPW),
		"URL query": url.QueryEscape(secretPW), "key=value": kvQuote(secretPW), "its core": secretCore,
	}
}

func kvQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// The server started with that password in every DSN (URL form for
// primaries, key=value for replicas, both from the environment), at debug
// level, shows it nowhere: not in its output, its logs, any answer's
// header or body, /metrics, /debug/shards(.json), /readyz, under load, with
// a shard's primary down, nor when it refuses a bad configuration.
func TestNoPasswordInAnythingEmitted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addSecretRole(t, ctx)
	t.Setenv("PGSHARD_TEST_PW_URL", secretForms()["URL userinfo"])
	t.Setenv("PGSHARD_TEST_PW_KV", kvQuote(secretPW))
	wrong := "x" + secretPW
	t.Setenv("PGSHARD_TEST_WRONG_PW_URL", strings.TrimPrefix(url.UserPassword(secretRole, wrong).String(), secretRole+":"))
	t.Setenv("PGSHARD_TEST_WRONG_PW_KV", kvQuote(wrong))
	dir := t.TempDir()
	seen := map[string]*syncBuffer{} // what was emitted, by where

	// Configurations the server refuses, each with the password in it.
	primary := "postgres://" + secretRole + ":${PGSHARD_TEST_PW_URL}@127.0.0.1:%d/pgshard"
	replica := "host=127.0.0.1 port=%d dbname=pgshard user=" + secretRole + " password=${PGSHARD_TEST_PW_KV}"
	samePort := func(p int) int { return p }
	for _, bad := range []struct {
		name, primary, replica string
		port                   func(int) int
	}{
		{"invalid URL option", primary + "?sslmode=bogus", replica, samePort},
		{"invalid key=value port", primary, strings.Replace(replica, "port=%d", "port=x%d", 1), samePort},
		{"wrong password", strings.Replace(primary, "_PW_", "_WRONG_PW_", 1), strings.Replace(replica, "_PW_", "_WRONG_PW_", 1), samePort},
		{"unreachable servers", primary, replica, func(int) int { return 1 }},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(bad.name, " ", "-")+".yaml")
		writeSecretTopology(t, path, bad.primary, bad.replica, bad.port)
		out := &syncBuffer{}
		start := time.Now()
		code := runArgs([]string{"-config", path, "-listen", "127.0.0.1:0", "-log-level", "debug"}, out, out)
		assert.NotZero(t, code, "%s: the server started", bad.name)
		assert.Containsf(t, out.String(), "server:", "%s: no error printed: %q", bad.name, out.String())
		t.Logf("%s, refused in %v: %s", bad.name, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out.String()))
		seen["output when refusing "+bad.name] = out
	}

	path := filepath.Join(dir, "topology.yaml")
	writeSecretTopology(t, path, primary, replica, samePort)
	s := serveArgs(t, "-config", path, "-listen", "127.0.0.1:0", "-log-level", "debug")
	seen["stdout"], seen["stderr (log)"] = s.stdout, s.stderr
	answers := &syncBuffer{}
	seen["answers"] = answers
	client := &http.Client{Transport: recordingTransport{http.DefaultTransport, answers}, Timeout: 10 * time.Second}
	get := func(method, path, body string, header ...string) int {
		t.Helper()
		req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	pages := func() {
		for _, p := range []string{"/metrics", "/debug/shards", "/debug/shards.json", "/readyz", "/healthz", "/"} {
			get("GET", p, "")
		}
	}

	// A short load, then answers of every kind.
	rep, err := loadgen.Run(ctx, loadgen.Options{Targets: []string{s.base}, Duration: 2 * time.Second, Concurrency: 8,
		Users: 100, ReadPercent: 70, Seed: 5, Client: client})
	require.NoError(t, err)
	report := &syncBuffer{}
	rep.Write(report)
	seen["loadgen report"] = report
	// The load is there to make answers of every kind to scan, not to
	// judge availability: a 503 from a check starved on a busy machine is
	// an answer like another; anything but 503 (or loadgen's expected 409)
	// is a server that is not working.
	assert.GreaterOrEqual(t, rep.Requests, 10, "loadgen requests\n%s", report.String())
	for st, n := range rep.ByStatus {
		assert.False(t, (st == 0 || st >= 400) && st != http.StatusServiceUnavailable && st != http.StatusConflict,
			"loadgen: %d answers with status %d: want a working server\n%s", n, st, report.String())
	}
	pages()
	get("GET", "/nope", "")
	get("GET", "/users/abc", "")
	get("GET", "/users/1", "", "X-Consistency-Token", "garbage")
	get("POST", "/users", `{"name":`)
	get("POST", "/users", strings.Repeat("x", maxBody+1))
	var onShard1 []string
	for len(onShard1) < 2 {
		res, err := client.Post(s.base+"/users", "application/json", strings.NewReader(`{"name":"a"}`))
		require.NoError(t, err)
		if res.Header.Get("X-Shard-Range") == "80-" {
			onShard1 = append(onShard1, strings.TrimPrefix(res.Header.Get("Location"), "/users/"))
		}
		res.Body.Close()
	}

	// shard1's primary down: 503s that explain, a dashboard full of errors.
	node, err := cluster.Node("shard1-primary")
	require.NoError(t, err)
	require.NoError(t, node.Stop(ctx))
	stopped := true
	t.Cleanup(func() {
		if stopped {
			node.Start(context.Background())
		}
	})
	unavailable := 0
	for deadline := time.Now().Add(10 * time.Second); unavailable < 3 && time.Now().Before(deadline); {
		for _, c := range []int{
			get("POST", "/users", `{"name":"b"}`),
			get("PUT", "/users/"+onShard1[0], `{"name":"c"}`),
			get("POST", "/users/"+onShard1[1]+"/posts", `{"body":"d"}`),
			get("GET", "/posts/recent", ""),
			get("GET", "/users/"+onShard1[0], ""),
		} {
			if c == http.StatusServiceUnavailable {
				unavailable++
			}
		}
	}
	assert.GreaterOrEqual(t, unavailable, 3, "answers 503 with shard1's primary down: want some")
	for deadline := time.Now().Add(10 * time.Second); get("GET", "/readyz", "") != http.StatusServiceUnavailable; time.Sleep(50 * time.Millisecond) {
		require.False(t, time.Now().After(deadline), "/readyz still 200 10s after a primary stopped")
	}
	pages()
	require.NoError(t, node.Start(ctx))
	stopped = false
	for deadline := time.Now().Add(20 * time.Second); get("GET", "/readyz", "") != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		require.False(t, time.Now().After(deadline), "/readyz not 200 20s after the primary restarted")
	}
	waitReplicasCaughtUp(t, ctx)
	pages()
	assert.NoError(t, s.stop(), "serve")

	// Everything seen: nothing shows the password in any form.
	for where, buf := range seen {
		text := buf.String()
		for form, secret := range secretForms() {
			if i := strings.Index(text, secret); i >= 0 {
				ctx := strings.ReplaceAll(text[max(0, i-120):min(len(text), i+len(secret)+40)], secret, "<"+form+">")
				assert.Failf(t, "the password is shown", "%s shows the password (%s): ...%s...", where, form, ctx)
			}
		}
	}
	// And it was worth looking at: the failures are in there.
	for where, want := range map[string]string{"stderr (log)": "level=WARN", "answers": "HTTP 503", "stdout": "shard1"} {
		assert.Containsf(t, seen[where].String(), want, "%s lacks %q: the test did not see what it means to check", where, want)
	}
	if t.Failed() {
		t.Logf("log:\n%s", s.stderr.String())
	}
}

// addSecretRole creates secretRole, a member of the cluster's user (so it
// may use its tables), on every primary, and waits for the replicas.
func addSecretRole(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, sh := range cluster.Shards() {
		err := sh.Primary.SuperExec(ctx, "CREATE ROLE "+secretRole+" LOGIN IN ROLE pgshard")
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "42710" { // duplicate_object: an earlier -count
			err = nil
		}
		require.NoError(t, err)
		// ALTER ROLE takes no parameters; the password is this file's constant.
		require.NoError(t, sh.Primary.SuperExec(ctx, "ALTER ROLE "+secretRole+" PASSWORD '"+strings.ReplaceAll(secretPW, "'", "''")+"'"))
	}
	waitReplicasCaughtUp(t, ctx)
}

func waitReplicasCaughtUp(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, sh := range cluster.Shards() {
		for _, r := range sh.Replicas {
			require.NoError(t, r.WaitCaughtUp(ctx, sh.Primary))
		}
	}
}

// writeSecretTopology writes the shared cluster's shards with DSNs from
// the patterns, which take a node's port as port maps it.
func writeSecretTopology(t *testing.T, path, primary, replica string, port func(int) int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("shards:\n")
	for i, sh := range cluster.Shards() {
		fmt.Fprintf(&b, "  - name: %s\n    range: %q\n    primary: %q\n    replicas:\n", sh.Name, testTopology().Shards[i].Range, fmt.Sprintf(primary, port(sh.Primary.Port())))
		for _, r := range sh.Replicas {
			fmt.Fprintf(&b, "      - %q\n", fmt.Sprintf(replica, port(r.Port())))
		}
	}
	b.WriteString("replica: {check_interval: 100ms, max_lag: 1s, connect_timeout: 1s}\n")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
}

// recordingTransport keeps every answer's status line, header and body.
type recordingTransport struct {
	next http.RoundTripper
	out  *syncBuffer
}

func (rt recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := rt.next.RoundTrip(req)
	if err != nil {
		fmt.Fprintf(rt.out, "%s %s: transport error: %v\n", req.Method, req.URL.Path, err)
		return nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s -> HTTP %d\n", req.Method, req.URL.Path, res.StatusCode)
	res.Header.Write(&b)
	b.Write(body)
	b.WriteString("\n")
	rt.out.Write(b.Bytes())
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, err
}
