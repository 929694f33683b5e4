package app

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jackc/pgx/v5"
)

// injections is text that breaks SQL built by string concatenation, or
// tempts a layer to rewrite it. Every statement is parameterized, so each is
// stored and returned byte for byte, or refused with a 400 that says why.
var injections = []struct{ name, v string }{
	{"single quote", "'"},
	{"quotes", `O'Brien "the" ''x''`},
	{"drop users", "'; DROP TABLE users; --"},
	{"drop posts, double quotes", `"); DROP TABLE posts; --`},
	{"tautology", "x' OR '1'='1"},
	{"union", "' UNION SELECT name, created_at FROM users --"},
	{"dollar quoting", "$$; DROP TABLE users; $$"},
	{"tagged dollar quoting", "$t$ x $t$; DELETE FROM users; $t$"},
	{"placeholders", "$1 $2 $3 ? %s %v %d %!"},
	{"block comment", "/* comment */ x /*"},
	{"closing comment", "*/ DROP TABLE users; /*"},
	{"line comment", "-- everything after"},
	{"backslashes", `\ \\ \' \" \x00 \0 \n E'\\'`},
	{"escape string", `E'\x41'; SELECT pg_sleep(10); --`},
	{"semicolons", ";;;"},
	{"copy", "\\copy users TO '/tmp/x'"},
	{"html", "<script>alert(1)</script> & <b>"},
	{"template", "{{.}} ${HOME} $(id) `id`"},
	{"percent and underscore", "100% _of_ %%"},
	{"unicode", "Zoë 李雷 Ольга مرحبا"},
	{"emoji and ZWJ", "👩‍👩‍👧‍👦 🎉"},
	{"right-to-left override", "\u202egnp.exe"},
	{"byte order mark", "\ufeffBOM"},
	{"combining", "e\u0301\u0301\u0301"},
	{"line separators", "a\u2028b\u2029c"},
	{"no-break space", "\u00a0x\u00a0"},
	{"replacement character", "\ufffd"},
	{"controls", "a\x01b\x1fc\x7fd"},
	{"whitespace inside", "tab\there\nnewline\r\ncrlf"},
	{"leading and trailing spaces", "  kept  "},
	{"a hundred quotes", strings.Repeat("'", maxName)},
	{"a hundred emoji", strings.Repeat("🎉", maxName)},
}

// longBodies fill a post to its limit.
var longBodies = []struct{ name, v string }{
	{"5000 quotes", strings.Repeat("'", maxPostBody)},
	{"5000 backslashes", strings.Repeat(`\`, maxPostBody)},
	{"5000 characters of drops", strings.Repeat("'; DROP TABLE users; --", maxPostBody)[:maxPostBody]},
	{"5000 four-byte characters", strings.Repeat("𝄞", maxPostBody)},
}

func TestInjectionCorpusIsStoredVerbatim(t *testing.T) {
	in := start(t, nil, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	canary, _ := in.createUser("canary")
	before := countUsers(t, ctx)

	for _, tc := range injections {
		t.Run("name/"+tc.name, func(t *testing.T) {
			in := in.as(t)
			u, token := in.createUser(tc.v)
			require.Equal(t, tc.v, u.Name, "POST /users answered name")
			checkStoredName(t, ctx, u, tc.v)
			r := in.do("GET", "/users/"+u.ID, nil, "X-Consistency-Token", token)
			want(t, "GET", r, http.StatusOK)
			var got userOut
			r.json(t, &got)
			assert.Equal(t, tc.v, got.Name, "GET answered name")
			// The update path, and the post body, with the same text.
			r = in.do("PUT", "/users/"+u.ID, map[string]string{"name": tc.v}, "X-Consistency-Token", token)
			want(t, "PUT", r, http.StatusOK)
			token = r.header.Get("X-Consistency-Token")
			checkStoredName(t, ctx, u, tc.v)
			checkPost(t, in, ctx, u, token, tc.v)
		})
	}
	for _, tc := range longBodies {
		t.Run("body/"+tc.name, func(t *testing.T) {
			in := in.as(t)
			u, token := in.createUser("long " + tc.name)
			checkPost(t, in, ctx, u, token, tc.v)
		})
	}

	// Refused, with a 400 that names the field: what PostgreSQL text cannot
	// hold (NUL), what is blank, what is over the limit, what is not JSON.
	u, _ := in.createUser("refusals")
	refused := []struct {
		name, method, path string
		body               any
		mention            string
	}{
		{"NUL in a name", "POST", "/users", `{"name":"a\u0000b"}`, "name: must not contain NUL"},
		{"NUL alone", "POST", "/users", `{"name":"\u0000"}`, "name: must not contain NUL"},
		{"NUL in a rename", "PUT", "/users/" + u.ID, `{"name":"'; DROP TABLE users; --\u0000"}`, "name: must not contain NUL"},
		{"NUL in a post", "POST", "/users/" + u.ID + "/posts", `{"body":"x\u0000"}`, "body: must not contain NUL"},
		{"raw NUL byte in the JSON", "POST", "/users", "{\"name\":\"a\x00b\"}", "malformed JSON"},
		{"name over the limit", "POST", "/users", map[string]string{"name": strings.Repeat("'", maxName+1)}, "at most 100"},
		{"post over the limit", "POST", "/users/" + u.ID + "/posts", map[string]string{"body": strings.Repeat(`\`, maxPostBody+1)}, "at most 5000"},
		{"blank name", "POST", "/users", `{"name":"\u00a0\u2028 \t"}`, "name: must not be empty"},
		{"invalid UTF-8", "POST", "/users", "{\"name\":\"'\xc0\xaf; --\"}", "not valid UTF-8"},
		{"SQL instead of JSON", "POST", "/users", `'; DROP TABLE users; --`, "malformed JSON"},
		{"SQL as a field name", "POST", "/users", `{"name":"x","'; DROP TABLE users; --":1}`, "unknown field"},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			r := in.as(t).do(tc.method, tc.path, tc.body)
			want(t, tc.method+" "+tc.path, r, http.StatusBadRequest)
			assert.Contains(t, r.errorText(t), tc.mention, "error text")
		})
	}

	// Path IDs, query parameters and the token never reach SQL as text:
	// anything but their exact form is a 400 that names them.
	notIDs := []string{"1 OR 1=1", "1; DROP TABLE users", "1'--", "1/**/", "1\x00", "-1", "0x10", "1e3", "١", strings.Repeat("9", 10000),
		"'; DROP TABLE users; --", "$1", `1\`, "1%"}
	for _, v := range notIDs {
		esc := url.PathEscape(v)
		for _, c := range []struct {
			method, path string
			body         any
			mention      string
		}{
			{"GET", "/users/" + esc, nil, "id:"},
			{"PUT", "/users/" + esc, `{"name":"x"}`, "id:"},
			{"POST", "/users/" + esc + "/posts", `{"body":"x"}`, "id:"},
			{"GET", "/users/" + esc + "/posts", nil, "id:"},
			{"GET", "/users/" + u.ID + "/posts?before=" + url.QueryEscape(v), nil, "before:"},
			{"GET", "/users/" + u.ID + "/posts?limit=" + url.QueryEscape(v), nil, "limit:"},
			{"GET", "/posts/recent?limit=" + url.QueryEscape(v), nil, "limit:"},
		} {
			r := in.do(c.method, c.path, c.body)
			if !assert.Equal(t, http.StatusBadRequest, r.status, "%s %.80s: status; body %.200q", c.method, c.path, r.body) {
				continue
			}
			msg := r.errorText(t)
			assert.True(t, strings.HasPrefix(msg, c.mention), "%s %.80s: error %q does not start with %q", c.method, c.path, msg, c.mention)
		}
	}
	for _, v := range []string{"'; DROP TABLE users; --", "1.' OR 1=1 --", "1.$$", "1./* */", `1.\\`, "1.é", strings.Repeat("A", 5000)} {
		r := in.do("GET", "/users/"+u.ID, nil, "X-Consistency-Token", v)
		want(t, "token "+v[:min(len(v), 20)], r, http.StatusBadRequest)
		msg := r.errorText(t)
		assert.True(t, strings.HasPrefix(msg, "X-Consistency-Token"), "token %.20q: error %q does not name the header", v, msg)
	}
	// A well-formed token may name any shard: the name is data, not SQL.
	r := in.do("GET", "/users/"+u.ID, nil, "X-Consistency-Token", tokenNaming("shard0'; DROP TABLE users; --", 1))
	want(t, "token naming an odd shard", r, http.StatusOK)
	// A NUL in a header never reaches the handler: net/http refuses it.
	assert.Equal(t, http.StatusBadRequest, rawRequest(t, in, "GET /users/"+u.ID+" HTTP/1.1\r\nHost: x\r\nX-Consistency-Token: 1.\x00\r\nConnection: close\r\n\r\n").status, "NUL in the token header: status")
	// The mux's own 400 (a request target of *, found by FuzzHandler) is JSON too.
	r = rawRequest(t, in, "GET * HTTP/1.1\r\nHost: x\r\n\r\n")
	want(t, "GET *", r, http.StatusBadRequest)
	r.errorText(t)

	// The schema is intact and nothing was deleted or rewritten.
	checkSchema(t, ctx)
	after := countUsers(t, ctx)
	assert.GreaterOrEqual(t, after, before+int64(len(injections)+len(longBodies)+1), "%d users after the corpus, %d before: want at least %d more", after, before, len(injections)+len(longBodies)+1)
	r = in.do("GET", "/users/"+canary.ID, nil)
	want(t, "the canary", r, http.StatusOK)
	var got userOut
	r.json(t, &got)
	assert.Equal(t, "canary", got.Name, "the canary user's name")
}

// as is the instance with requests reported to t, for subtests.
func (in *instance) as(t testing.TB) *instance {
	c := *in
	c.t = t
	return &c
}

// checkStoredName reads the user's row on its shard's primary, bypassing
// the server, and compares it byte for byte.
func checkStoredName(t *testing.T, ctx context.Context, u userOut, want string) {
	t.Helper()
	var name string
	primaryRow(t, ctx, u.Shard, "SELECT name FROM users WHERE id = $1::bigint", u.ID).Scan(&name)
	assert.Equal(t, want, name, "stored name")
}

// checkPost posts body for u, and checks it in the answer, in the user's
// list of posts and in the database.
func checkPost(t *testing.T, in *instance, ctx context.Context, u userOut, token, body string) {
	t.Helper()
	r := in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": body}, "X-Consistency-Token", token)
	want(t, "POST post", r, http.StatusCreated)
	var p postOut
	r.json(t, &p)
	assert.True(t, p.Body == body, "POST post answered body %.80q (%d runes), want %.80q (%d runes)", p.Body, utf8.RuneCountInString(p.Body), body, utf8.RuneCountInString(body))
	r = in.do("GET", "/users/"+u.ID+"/posts", nil, "X-Consistency-Token", r.header.Get("X-Consistency-Token"))
	want(t, "GET posts", r, http.StatusOK)
	var ps postsOut
	r.json(t, &ps)
	assert.True(t, len(ps.Posts) > 0 && ps.Posts[0].ID == p.ID && ps.Posts[0].Body == body, "GET posts = %.300v, want the post %s with body %.80q first", ps.Posts, p.ID, body)
	var stored string
	primaryRow(t, ctx, u.Shard, "SELECT body FROM posts WHERE user_id = $1::bigint AND id = $2::bigint", u.ID, p.ID).Scan(&stored)
	assert.True(t, stored == body, "stored body %.80q, want %.80q", stored, body)
}

// primaryRow runs a query on a shard's primary on a connection of its own.
func primaryRow(t *testing.T, ctx context.Context, shardName, sql string, args ...any) pgx.Row {
	t.Helper()
	n, err := cluster.Node(shardName + "-primary")
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, n.DSN())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn.QueryRow(ctx, sql, args...)
}

func countUsers(t *testing.T, ctx context.Context) int64 {
	t.Helper()
	var total int64
	for _, sh := range cluster.Shards() {
		var n int64
		require.NoError(t, primaryRow(t, ctx, sh.Name, "SELECT count(*) FROM users").Scan(&n), "%s: count users", sh.Name)
		total += n
	}
	return total
}

// checkSchema checks that both tables and the feed's index are on every
// shard, with their columns.
func checkSchema(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, sh := range cluster.Shards() {
		var cols string
		err := primaryRow(t, ctx, sh.Name, `SELECT string_agg(table_name || '.' || column_name || ' ' || data_type, ', ' ORDER BY table_name, ordinal_position)
			FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN ('users', 'posts')`).Scan(&cols)
		const wantCols = "posts.user_id bigint, posts.id bigint, posts.body text, posts.created_at timestamp with time zone, " +
			"users.id bigint, users.name text, users.created_at timestamp with time zone, users.email text"
		assert.NoError(t, err, "%s: columns", sh.Name)
		assert.Equal(t, wantCols, cols, "%s: columns", sh.Name)
		var index bool
		assert.NoError(t, primaryRow(t, ctx, sh.Name, "SELECT to_regclass('public.posts_recent') IS NOT NULL").Scan(&index), "%s: index posts_recent", sh.Name)
		assert.True(t, index, "%s: index posts_recent missing", sh.Name)
	}
}

// tokenNaming builds a well-formed token that requires lsn on a shard
// called name.
func tokenNaming(name string, lsn uint64) string {
	b := binary.AppendUvarint(nil, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, lsn)
	return "1." + base64.RawURLEncoding.EncodeToString(b)
}

// rawRequest sends bytes that net/http's client would refuse to send.
func rawRequest(t *testing.T, in *instance, raw string) result {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(in.http.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Write([]byte(raw))
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return result{res.StatusCode, res.Header, body}
}
