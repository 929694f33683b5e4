package app

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/shard"
)

func TestUserLifecycle(t *testing.T) {
	in := start(t, nil, Options{})
	r := in.do("POST", "/users", map[string]string{"name": "Zoë 李"}, "Content-Type", "application/json; charset=utf-8")
	want(t, "POST /users", r, http.StatusCreated)
	var u userOut
	r.json(t, &u)
	id, err := strconv.ParseInt(u.ID, 10, 64)
	require.NoError(t, err, "id %q: want a positive decimal string", u.ID)
	require.Positive(t, id, "id %q: want a positive decimal string", u.ID)
	assert.Equal(t, "Zoë 李", u.Name, "created %+v", u)
	assert.False(t, u.CreatedAt.IsZero(), "created %+v", u)
	rng := shardRange(t, in, id)
	for _, h := range []struct{ name, want string }{
		{"X-Shard", u.Shard}, {"X-Shard-Range", rng}, {"X-Served-By", "primary"}, {"Location", "/users/" + u.ID},
	} {
		assert.Equal(t, h.want, r.header.Get(h.name), "POST header %s", h.name)
	}
	assert.Equal(t, in.r.User(id).Shard(), u.Shard, "the body's shard, the shard the router names")
	token := r.header.Get("X-Consistency-Token")
	assert.True(t, strings.HasPrefix(token, "1.") && len(token) >= 4, "X-Consistency-Token %q: want a non-empty session token", token)

	// With the token: read-your-writes, and the answer carries a token.
	r = in.do("GET", "/users/"+u.ID, nil, "X-Consistency-Token", token)
	want(t, "GET with token", r, http.StatusOK)
	var got userOut
	r.json(t, &got)
	assert.Equal(t, u, got, "GET")
	assert.Equal(t, u.Shard, r.header.Get("X-Shard"), "GET X-Shard: the name in the body")
	assert.Equal(t, rng, r.header.Get("X-Shard-Range"), "GET X-Shard-Range")
	assert.NotEmpty(t, r.header.Get("X-Consistency-Token"), "GET token")
	assert.Contains(t, []string{"cache", "replica", "primary"}, r.header.Get("X-Served-By"), "X-Served-By")
	// Later reads are cache hits (once the create's own invalidation has
	// come back from PostgreSQL and dropped the key a last time).
	for i := 0; ; i++ {
		r = in.do("GET", "/users/"+u.ID, nil)
		want(t, "GET again", r, http.StatusOK)
		if r.header.Get("X-Served-By") == "cache" {
			break
		}
		require.Less(t, i, 50, "GET X-Served-By = %q after %d reads, want cache", r.header.Get("X-Served-By"), i+1)
		time.Sleep(5 * time.Millisecond)
	}

	r = in.do("PUT", "/users/"+u.ID, map[string]string{"name": "Ada"}, "X-Consistency-Token", token)
	want(t, "PUT", r, http.StatusOK)
	r.json(t, &got)
	assert.Equal(t, "Ada", got.Name, "PUT = %+v", got)
	assert.Equal(t, u.ID, got.ID, "PUT = %+v", got)
	assert.True(t, got.CreatedAt.Equal(u.CreatedAt), "PUT = %+v: created_at changed from %v", got, u.CreatedAt)
	token = r.header.Get("X-Consistency-Token")
	r = in.do("GET", "/users/"+u.ID, nil, "X-Consistency-Token", token)
	want(t, "GET after PUT", r, http.StatusOK)
	r.json(t, &got)
	assert.Equal(t, "Ada", got.Name, "GET after PUT: name")
}

func shardRange(t *testing.T, in *instance, id int64) string {
	t.Helper()
	name := in.r.Map().Lookup(shard.HashInt64(id))
	rng, _ := in.r.Map().Range(name)
	return rng.String()
}

func TestUserErrors(t *testing.T) {
	in := start(t, nil, Options{})
	u, _ := in.createUser("Grace")
	long := strings.Repeat("é", maxName+1)
	tests := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		mention            string
	}{
		{"unknown user", "GET", "/users/123456789", nil, nil, 404, "not found"},
		{"zero id", "GET", "/users/0", nil, nil, 400, "positive"},
		{"negative id", "GET", "/users/-5", nil, nil, 400, "positive"},
		{"overflowing id", "GET", "/users/9223372036854775808", nil, nil, 400, "64-bit"},
		{"max id is fine", "GET", "/users/9223372036854775807", nil, nil, 404, "not found"},
		{"leading zero", "GET", "/users/0" + u.ID, nil, nil, 400, "ID"},
		{"plus sign", "GET", "/users/%2B" + u.ID, nil, nil, 400, "ID"},
		{"letters", "GET", "/users/abc", nil, nil, 400, "ID"},
		{"float", "GET", "/users/1.5", nil, nil, 400, "ID"},
		{"malformed JSON", "POST", "/users", `{"name": "x"`, nil, 400, "malformed"},
		{"not JSON", "POST", "/users", `name=x`, nil, 400, "malformed"},
		{"empty body", "POST", "/users", ``, nil, 400, "empty"},
		{"wrong type", "POST", "/users", `{"name": 42}`, nil, 400, "name: want a string"},
		{"array", "POST", "/users", `["x"]`, nil, 400, "object"},
		{"null", "POST", "/users", `null`, nil, 400, "name: required"},
		{"missing name", "POST", "/users", `{}`, nil, 400, "name: required"},
		{"unknown field", "POST", "/users", `{"name":"x","admin":true}`, nil, 400, "unknown field"},
		{"two objects", "POST", "/users", `{"name":"x"}{"name":"y"}`, nil, 400, "one JSON object"},
		{"empty name", "POST", "/users", `{"name":""}`, nil, 400, "empty"},
		{"blank name", "POST", "/users", `{"name":"  \t"}`, nil, 400, "empty"},
		{"long name", "POST", "/users", map[string]string{"name": long}, nil, 400, "at most 100"},
		{"NUL in name", "POST", "/users", `{"name":"a\u0000b"}`, nil, 400, "NUL"},
		{"bad UTF-8", "POST", "/users", []byte("{\"name\":\"\xff\xfe\"}"), nil, 400, "UTF-8"},
		{"huge body", "POST", "/users", `{"name":"` + strings.Repeat("x", maxBody) + `"}`, nil, 413, "at most"},
		{"huge body, chunked", "POST", "/users", &chunked{strings.Repeat(" ", maxBody+1)}, nil, 413, "at most"},
		{"PUT unknown user", "PUT", "/users/123456789", `{"name":"x"}`, nil, 404, "not found"},
		{"PUT bad id", "PUT", "/users/x", `{"name":"x"}`, nil, 400, "ID"},
		{"PUT bad body", "PUT", "/users/" + u.ID, `{"name":7}`, nil, 400, "want a string"},
		{"PUT long name", "PUT", "/users/" + u.ID, map[string]string{"name": long}, nil, 400, "at most 100"},
		{"malformed token", "GET", "/users/" + u.ID, nil, []string{"X-Consistency-Token", "garbage"}, 400, "X-Consistency-Token"},
		{"future token", "POST", "/users", `{"name":"x"}`, []string{"X-Consistency-Token", "9.AAAA"}, 400, "version"},
		{"bad base64 token", "GET", "/posts/recent", nil, []string{"X-Consistency-Token", "1.!!!"}, 400, "base64"},
		{"unknown route", "GET", "/nope", nil, nil, 404, "no such route"},
		{"unknown nested route", "GET", "/users/1/friends", nil, nil, 404, "no such route"},
		{"DELETE user", "DELETE", "/users/1", nil, nil, 405, "not allowed"},
		{"PATCH users", "PATCH", "/users", nil, nil, 405, "not allowed"},
		{"POST recent", "POST", "/posts/recent", nil, nil, 405, "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := in.do(tc.method, tc.path, tc.body, tc.headers...)
			want(t, tc.method+" "+tc.path, r, tc.status)
			assert.Contains(t, r.errorText(t), tc.mention, "error text")
			if tc.status == 405 {
				assert.NotEmpty(t, r.header.Get("Allow"), "405 without an Allow header")
			}
		})
	}
	// curl -d sends its form type; the body is JSON all the same.
	r := in.do("POST", "/users", `{"name":"curl"}`, "Content-Type", "application/x-www-form-urlencoded")
	want(t, "JSON sent as a form", r, http.StatusCreated)
	// A name of exactly 100 characters, multi-byte ones, is fine.
	r = in.do("POST", "/users", map[string]string{"name": strings.Repeat("李", maxName)})
	want(t, "100-character name", r, http.StatusCreated)
}

// chunked is a body of unknown length, sent chunked.
type chunked struct{ s string }

func (c *chunked) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	n := copy(p, c.s)
	c.s = c.s[n:]
	return n, nil
}

func TestPosts(t *testing.T) {
	in := start(t, nil, Options{})
	u, token := in.createUser("Poster")
	var ids []string
	for i := range 5 {
		r := in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": fmt.Sprintf("post %d", i)}, "X-Consistency-Token", token)
		want(t, "POST post", r, http.StatusCreated)
		var p postOut
		r.json(t, &p)
		require.Equal(t, u.ID, p.UserID, "post %+v", p)
		require.Equal(t, fmt.Sprintf("post %d", i), p.Body, "post %+v", p)
		require.NotEmpty(t, p.ID, "post %+v", p)
		require.False(t, p.CreatedAt.IsZero(), "post %+v", p)
		assert.NotEmpty(t, r.header.Get("X-Shard"), "POST post headers %v", r.header)
		assert.Equal(t, "primary", r.header.Get("X-Served-By"), "POST post headers %v", r.header)
		token = r.header.Get("X-Consistency-Token")
		ids = append(ids, p.ID)
	}
	slices.Reverse(ids) // newest first

	list := func(query string) []string {
		t.Helper()
		r := in.do("GET", "/users/"+u.ID+"/posts"+query, nil, "X-Consistency-Token", token)
		want(t, "GET posts"+query, r, http.StatusOK)
		assert.NotEmpty(t, r.header.Get("X-Shard"), "GET posts headers %v", r.header)
		assert.NotEmpty(t, r.header.Get("X-Served-By"), "GET posts headers %v", r.header)
		var ps postsOut
		r.json(t, &ps)
		var got []string
		for _, p := range ps.Posts {
			got = append(got, p.ID)
		}
		return got
	}
	assert.Equal(t, ids, list(""), "posts")
	assert.Equal(t, ids[:2], list("?limit=2"), "limit=2")
	assert.Equal(t, ids[2:4], list("?limit=2&before="+ids[1]), "before")
	assert.Empty(t, list("?before="+ids[4]), "before the oldest")
	r := in.do("GET", "/users/123456789/posts", nil)
	want(t, "posts of an unknown user", r, http.StatusOK)
	assert.Equal(t, "{\"posts\":[]}\n", string(r.body), "unknown user's posts: want an empty list")

	r = in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": strings.Repeat("ü", maxPostBody)})
	want(t, "5000-character post", r, http.StatusCreated)

	tests := []struct {
		name, method, path string
		body               any
		status             int
		mention            string
	}{
		{"post for unknown user", "POST", "/users/123456789/posts", `{"body":"x"}`, 404, "not found"},
		{"post too long", "POST", "/users/" + u.ID + "/posts", map[string]string{"body": strings.Repeat("ü", maxPostBody+1)}, 400, "at most 5000"},
		{"post empty", "POST", "/users/" + u.ID + "/posts", `{"body":""}`, 400, "empty"},
		{"post wrong type", "POST", "/users/" + u.ID + "/posts", `{"body":["x"]}`, 400, "body: want a string"},
		{"post missing body", "POST", "/users/" + u.ID + "/posts", `{"name":"x"}`, 400, "unknown field"},
		{"post bad id", "POST", "/users/-1/posts", `{"body":"x"}`, 400, "ID"},
		{"list bad id", "GET", "/users/99999999999999999999/posts", nil, 400, "ID"},
		{"limit 0", "GET", "/users/" + u.ID + "/posts?limit=0", nil, 400, "limit"},
		{"limit 101", "GET", "/users/" + u.ID + "/posts?limit=101", nil, 400, "limit"},
		{"limit text", "GET", "/users/" + u.ID + "/posts?limit=ten", nil, 400, "limit"},
		{"before negative", "GET", "/users/" + u.ID + "/posts?before=-3", nil, 400, "before"},
		{"recent limit 0", "GET", "/posts/recent?limit=0", nil, 400, "limit"},
		{"recent limit huge", "GET", "/posts/recent?limit=99999999999999999999", nil, 400, "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := in.do(tc.method, tc.path, tc.body)
			want(t, tc.method+" "+tc.path, r, tc.status)
			assert.Contains(t, r.errorText(t), tc.mention, "error text")
		})
	}
}

func TestRecentPostsMergesShards(t *testing.T) {
	in := start(t, nil, Options{})
	// Users on both shards, each with posts, interleaved in time.
	seen := map[string]bool{}
	var users []userOut
	token := ""
	for len(seen) < 2 || len(users) < 4 {
		r := in.do("POST", "/users", map[string]string{"name": "feed"}, "X-Consistency-Token", token)
		want(t, "POST /users", r, http.StatusCreated)
		var u userOut
		r.json(t, &u)
		token = r.header.Get("X-Consistency-Token")
		seen[u.Shard] = true
		users = append(users, u)
	}
	var newest []string
	for i := range 8 {
		u := users[i%len(users)]
		r := in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": "feed post"}, "X-Consistency-Token", token)
		want(t, "POST post", r, http.StatusCreated)
		var p postOut
		r.json(t, &p)
		token = r.header.Get("X-Consistency-Token")
		newest = append([]string{p.ID}, newest...)
	}
	r := in.do("GET", "/posts/recent?limit=5", nil, "X-Consistency-Token", token)
	want(t, "GET /posts/recent", r, http.StatusOK)
	var ps postsOut
	r.json(t, &ps)
	var got []string
	for _, p := range ps.Posts {
		got = append(got, p.ID)
	}
	// Other tests' posts may be newer; ours must appear in order, newest first.
	require.Len(t, got, 5, "recent")
	assert.True(t, slices.IsSortedFunc(got, func(a, b string) int { return cmpID(b, a) }), "recent %v: not newest first", got)
	assert.False(t, got[0] != newest[0] && cmpID(got[0], newest[0]) < 0, "recent %v: the newest post %s is missing", got, newest[0])
	assert.NotEmpty(t, r.header.Get("X-Consistency-Token"), "a read with a token answered without one")
	r = in.do("GET", "/posts/recent", nil)
	want(t, "GET /posts/recent default", r, http.StatusOK)
	r.json(t, &ps)
	assert.LessOrEqual(t, len(ps.Posts), defaultPage, "default limit")
}

func cmpID(a, b string) int {
	x, _ := strconv.ParseInt(a, 10, 64)
	y, _ := strconv.ParseInt(b, 10, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func TestHealthReadyMetricsDebug(t *testing.T) {
	in := start(t, nil, Options{Instance: "test-instance"})
	u, _ := in.createUser("Metrics")
	in.do("GET", "/users/"+u.ID, nil)
	in.do("GET", "/users/"+u.ID, nil)
	in.do("GET", "/users/x", nil)

	r := in.do("GET", "/healthz", nil)
	want(t, "healthz", r, http.StatusOK)
	r = in.do("GET", "/readyz", nil)
	want(t, "readyz", r, http.StatusOK)

	r = in.do("GET", "/metrics", nil)
	want(t, "metrics", r, http.StatusOK)
	ct := r.header.Get("Content-Type")
	assert.True(t, strings.HasPrefix(ct, "text/plain; version=0.0.4"), "metrics Content-Type %q", ct)
	m := string(r.body)
	for _, s := range []string{
		`pgshard_http_requests_total{route="GET /users/{id}",status="200"} 2`,
		`pgshard_http_requests_total{route="GET /users/{id}",status="400"} 1`,
		`pgshard_http_request_duration_seconds_bucket{route="POST /users",status="201",le="+Inf"} 1`,
		`pgshard_http_request_duration_seconds_count{route="POST /users",status="201"} 1`,
		`# TYPE pgshard_http_request_duration_seconds histogram`,
		`pgshard_node_lag_seconds{node="127.0.0.1:`,
		`role="replica",shard="shard1"}`,
		`pgshard_node_eligible{node=`,
		`pgshard_node_outstanding_queries{`,
		`pgshard_node_fallbacks_total{`,
		`pgshard_cache_hits_total{cache="users"} `,
		`pgshard_cache_misses_total{cache="users"}`,
		`pgshard_cache_evictions_total{cache="users"} 0`,
		`pgshard_cache_invalidations_received_total{range="-80",shard="shard0"}`,
		`pgshard_shard_primary_up{range="80-",shard="shard1"} 1`,
	} {
		assert.Containsf(t, m, s, "metrics lack %s", s)
	}
	checkExposition(t, m)

	r = in.do("GET", "/debug/shards.json", nil)
	want(t, "shards.json", r, http.StatusOK)
	var doc shardsDoc
	r.json(t, &doc)
	require.Equal(t, "test-instance", doc.Instance, "shards.json: %+v", doc)
	require.True(t, doc.Ready, "shards.json: %+v", doc)
	require.Len(t, doc.Shards, 2, "shards.json: %+v", doc)
	require.Len(t, doc.Caches, 1, "shards.json: %+v", doc)
	for _, s := range doc.Shards {
		var roles []string
		for _, n := range s.Nodes {
			roles = append(roles, n.Role)
		}
		assert.Equal(t, []string{"primary", "replica"}, roles, "shard %s nodes %+v: want a primary and a replica", s.Name, s.Nodes)
	}
	shardsJSON := string(r.body)
	r = in.do("GET", "/debug/shards", nil)
	want(t, "dashboard", r, http.StatusOK)
	page := string(r.body)
	assert.Contains(t, r.header.Get("Content-Type"), "text/html", "dashboard Content-Type")
	assert.Contains(t, page, "shards.json", "dashboard: %s", r.header.Get("Content-Type"))
	for _, external := range []string{"http://", "https://", "//cdn", "<link", "src=\""} {
		assert.NotContainsf(t, page, external, "dashboard refers to an external asset (%q)", external)
	}
	r = in.do("GET", "/", nil)
	want(t, "root redirects to the dashboard", r, http.StatusOK)

	// No password anywhere the server shows things.
	for what, text := range map[string]string{"metrics": m, "shards.json": shardsJSON, "logs": in.logs.String(), "page": page} {
		assert.Falsef(t, strings.Contains(text, testPassword), "%s shows the password", what) // not NotContains: it would print the text, password and all
	}
}

// checkExposition checks every line of the Prometheus text format.
func checkExposition(t *testing.T, m string) {
	t.Helper()
	typed := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(m, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			assert.True(t, len(f) == 4 && !typed[f[2]], "line %d: %q: bad or repeated TYPE", i+1, line)
			typed[f[2]] = true
		default:
			name, rest, _ := strings.Cut(line, "{")
			if !strings.Contains(line, "{") {
				name, rest, _ = strings.Cut(line, " ")
			}
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			assert.True(t, typed[name] || typed[base], "line %d: %q: sample before its TYPE", i+1, line)
			v := rest[strings.LastIndexByte(rest, ' ')+1:]
			if v != "+Inf" {
				_, err := strconv.ParseFloat(v, 64)
				assert.NoError(t, err, "line %d: %q: value %q", i+1, line, v)
			}
		}
	}
}

func TestRateLimit(t *testing.T) {
	var now atomic.Int64 // the server reads the clock on other goroutines
	now.Store(time.Unix(1_700_000_000, 0).UnixNano())
	in := start(t, nil, Options{Rate: 1, Burst: 2, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	for i := range 2 {
		want(t, fmt.Sprintf("request %d", i), in.do("GET", "/users/1", nil), http.StatusNotFound)
	}
	r := in.do("GET", "/users/1", nil)
	want(t, "third request", r, http.StatusTooManyRequests)
	assert.Equal(t, "1", r.header.Get("Retry-After"), "Retry-After")
	r.errorText(t)
	want(t, "health checks are not limited", in.do("GET", "/healthz", nil), http.StatusOK)
	now.Add(int64(time.Second))
	want(t, "a second later", in.do("GET", "/users/1", nil), http.StatusNotFound)
}

func TestPanicIsA500(t *testing.T) {
	in := start(t, nil, Options{})
	in.srv.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("kaboom at " + testPassword) })
	r := in.do("GET", "/boom", nil)
	want(t, "panicking handler", r, http.StatusInternalServerError)
	assert.Equal(t, "internal error", r.errorText(t), "error text")
	logs := in.logs.String()
	assert.Contains(t, logs, "handler panic", "the panic is not logged")
	assert.Contains(t, logs, "kaboom", "the panic is not logged")
	assert.NotContains(t, logs, testPassword, "the log shows the password")
	want(t, "the server still serves", in.do("GET", "/healthz", nil), http.StatusOK)
}

// A shard whose primary is unreachable: writes there are 503 with the
// reason, never 2xx, and /readyz says not ready; the other shard works.
func TestDeadShardIs503(t *testing.T) {
	topo := testTopology()
	topo.Shards[1].Primary = "postgres://pgshard:" + testPassword + "@127.0.0.1:1/pgshard?connect_timeout=1"
	topo.Shards[1].Replicas = nil
	topo.Replica.ConnectTimeout = 500 * time.Millisecond
	in := start(t, topo, Options{})

	var dead, alive int
	for i := 0; i < 40 && (dead == 0 || alive == 0); i++ {
		r := in.do("POST", "/users", map[string]string{"name": "x"})
		switch r.status {
		case http.StatusCreated:
			alive++
		case http.StatusServiceUnavailable:
			dead++
			msg := r.errorText(t)
			assert.True(t, strings.Contains(msg, "shard1") || strings.Contains(msg, "80-"), "503 %q does not name the shard", msg)
			assert.NotContainsf(t, msg, testPassword, "503 %q shows the password", msg)
		default:
			require.FailNowf(t, "unexpected status", "POST /users: status %d, body %q; want 201 or 503", r.status, r.body)
		}
	}
	require.True(t, dead > 0 && alive > 0, "%d writes failed and %d succeeded: want both", dead, alive)
	r := in.do("GET", "/readyz", nil)
	want(t, "readyz", r, http.StatusServiceUnavailable)
	r = in.do("GET", "/posts/recent", nil)
	want(t, "recent feed with a dead shard", r, http.StatusServiceUnavailable)
	assert.Contains(t, r.errorText(t), "shard1", "feed error does not name the failed shard")
	assert.NotContains(t, in.logs.String(), testPassword, "the log shows the password")
}
