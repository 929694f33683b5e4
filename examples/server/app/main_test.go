package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// cluster is two shards of one primary and one replica each, shared by
// every test. Its password is distinctive so that tests can look for it
// where it must never appear. A test that pauses a node resumes it.
var cluster *pgcluster.Cluster

const testPassword = "Sup3r-s3cret_pw"

func TestMain(m *testing.M) {
	os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 2, Replicas: 1, Password: testPassword}, &cluster))
}

// fast checks replicas often and bounds lag tightly, so that tests see
// changes quickly.
var fast = replica.Options{CheckInterval: 50 * time.Millisecond, CheckTimeout: time.Second, MaxLag: 300 * time.Millisecond}

// instance is one server, with its own router, on the shared cluster.
type instance struct {
	t    testing.TB
	srv  *Server
	r    *router.Router
	http *httptest.Server
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func testTopology() *Topology {
	t := DevTopology(cluster)
	t.Replica = fast
	return t
}

// start runs a server over topo (nil: the shared cluster) in this process.
func start(t testing.TB, topo *Topology, o Options) *instance {
	t.Helper()
	if topo == nil {
		topo = testTopology()
	}
	logs := &syncBuffer{}
	red := NewRedactor(topo)
	log := slog.New(redactHandler{next: slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}), r: red})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := topo.RouterConfig(log)
	if o.Tracer == nil {
		o.Tracer = NewTracer(red)
	}
	cfg.Tracer = o.Tracer
	r, err := router.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	o.Logger, o.Redactor, o.Cache, o.MaxLag = log, red, topo.Cache, topo.MaxLag()
	srv, err := New(ctx, r, o)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	waitListening(t, r)
	return &instance{t: t, srv: srv, r: r, http: hs, logs: logs}
}

// waitListening waits until every reachable shard's cache listener is up,
// so that cached reads use the cache.
func waitListening(t testing.TB, r *router.Router) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		up := true
		for _, s := range r.Stats().Shards {
			up = up && (s.Listening || s.Replica.Primary == "")
		}
		if up {
			return
		}
		require.False(t, time.Now().After(deadline), "cache listeners not up within 10s")
		time.Sleep(5 * time.Millisecond)
	}
}

// result is an HTTP answer.
type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) json(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body %q", r.body)
}

// errorText returns the {"error"} of an answer, failing if it has none.
func (r result) errorText(t testing.TB) string {
	t.Helper()
	var e struct {
		Error *string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &e), "status %d: body %q is not {\"error\": ...}", r.status, r.body)
	require.NotNil(t, e.Error, "status %d: body %q is not {\"error\": ...}", r.status, r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"), "error Content-Type")
	return *e.Error
}

// do sends a request; headers are name, value pairs.
func (in *instance) do(method, path string, body any, headers ...string) result {
	in.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, in.http.URL+path, rd)
	require.NoError(in.t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := in.http.Client().Do(req)
	require.NoError(in.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(in.t, err)
	return result{res.StatusCode, res.Header, b}
}

// want fails unless the answer has the status.
func want(t testing.TB, what string, r result, status int) {
	t.Helper()
	require.Equal(t, status, r.status, "%s: status; body %q", what, r.body)
}

type userOut struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Shard     string    `json:"shard"`
}

type postOut struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}

type postsOut struct {
	Posts []postOut `json:"posts"`
}

// createUser makes a user and returns it with the write's token.
func (in *instance) createUser(name string) (userOut, string) {
	in.t.Helper()
	r := in.do("POST", "/users", map[string]string{"name": name})
	want(in.t, "POST /users", r, http.StatusCreated)
	var u userOut
	r.json(in.t, &u)
	return u, r.header.Get("X-Consistency-Token")
}
