package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/router"
)

// fuzzUser is a user that FuzzHandler's seeds name, made before each run.
const fuzzUser = 4242

// FuzzHandler drives the whole server (rate limit, token, routes, JSON,
// SQL, the database) with requests made of fuzzed parts: method, path,
// query, X-Consistency-Token, one more header line, and body. Each request
// is read by net/http's own parser first, and one it refuses never reaches
// the handler, as on a real connection. With the database up, no input may
// cause a 5xx or a panic, and every error is a JSON {"error": "..."}.
func FuzzHandler(f *testing.F) {
	in := start(f, nil, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t := in.r.User(fuzzUser)
	_, err := t.Exec(ctx, "INSERT INTO users (id, name) VALUES ($1, 'fuzz') ON CONFLICT (id) DO NOTHING", int64(fuzzUser))
	require.NoError(f, err)
	id := strconv.Itoa(fuzzUser)
	tok := router.NewSession().Token()
	for _, s := range []struct{ method, path, query, token, header, body string }{
		{"POST", "/users", "", "", "Content-Type: application/json", `{"name":"Ada"}`},
		{"GET", "/users/" + id, "", "", "", ""},
		{"GET", "/users/" + id, "", tok, "", ""},
		{"HEAD", "/users/" + id, "", "", "", ""},
		{"PUT", "/users/" + id, "", "", "", `{"name":"fuzz"}`},
		{"POST", "/users/" + id + "/posts", "", tok, "", `{"body":"hello"}`},
		{"GET", "/users/" + id + "/posts", "limit=5&before=9223372036854775807", "", "", ""},
		{"GET", "/posts/recent", "limit=3", "", "", ""},
		{"GET", "/users/" + id, "", tokenNaming("shard0", 1<<62), "", ""},
		{"GET", "/users/" + id, "", tokenNaming("shard1", 1), "", ""},
		{"GET", "/users/" + id, "", "1.!!", "", ""},
		{"POST", "/users", "", "", "Transfer-Encoding: chunked", "5\r\n{\"nam\r\n0\r\n\r\n"},
		{"POST", "/users", "", "", "Content-Type: text/plain", `{"name":"\u0000"}`},
		{"PUT", "/users/0", "", "", "", `{"name":"x"}`},
		{"DELETE", "/users/" + id, "", "", "", ""},
		{"GET", "/users/%2e%2e/x", "", "", "", ""},
		{"OPTIONS", "*", "", "", "", ""},
		{"CONNECT", "127.0.0.1:1", "", "", "", ""},
		{"GET", "http://other/users/" + id, "", "", "", ""},
		{"GET", "/metrics", "", "", "", ""},
		{"GET", "/debug/shards.json", "", "", "", ""},
		{"GET", "/", "", "", "", ""},
		{"GET", "/readyz", "a=%zz", "", "Expect: 100-continue", ""},
	} {
		f.Add(s.method, s.path, s.query, s.token, s.header, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, path, query, token, header string, body []byte) {
		var raw bytes.Buffer
		raw.WriteString(method + " " + path)
		if query != "" {
			raw.WriteString("?" + query)
		}
		raw.WriteString(" HTTP/1.1\r\nHost: pgshard.test\r\n")
		if token != "" {
			raw.WriteString("X-Consistency-Token: " + token + "\r\n")
		}
		if header != "" {
			raw.WriteString(header + "\r\n")
		}
		raw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
		raw.Write(body)
		req, err := readRequestAsServer(raw.Bytes())
		if err != nil {
			return // net/http answers it, without the handler
		}
		panics := counterValue(in.srv.metrics.panics)
		w := httptest.NewRecorder()
		in.srv.ServeHTTP(w, req)
		res := w.Result()
		b := w.Body.Bytes()
		require.Equal(t, panics, counterValue(in.srv.metrics.panics), "%s %q: the handler panicked; log:\n%s", req.Method, req.RequestURI, in.logs.String())
		require.Less(t, res.StatusCode, 500, "%s %q (token %q): status with the database up; body %q", req.Method, req.RequestURI, token, b)
		ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if res.StatusCode >= 400 {
			var e map[string]any
			require.NoError(t, json.Unmarshal(b, &e), "%s %q: status %d with body %q: want {\"error\": ...}", req.Method, req.RequestURI, res.StatusCode, b)
			require.Len(t, e, 1, "%s %q: status %d with body %q: want {\"error\": ...}", req.Method, req.RequestURI, res.StatusCode, b)
			_, ok := e["error"].(string)
			require.True(t, ok && ct == "application/json", "%s %q: status %d, Content-Type %q, body %q: want a JSON {\"error\": \"...\"}", req.Method, req.RequestURI, res.StatusCode, ct, b)
		}
		require.False(t, res.StatusCode < 300 && ct == "application/json" && !json.Valid(b), "%s %q: status %d with invalid JSON %q", req.Method, req.RequestURI, res.StatusCode, b)
		if tk := res.Header.Get("X-Consistency-Token"); tk != "" {
			_, err := router.ParseSession(tk)
			require.NoError(t, err, "%s %q: answered a token that does not parse: %q", req.Method, req.RequestURI, tk)
		}
		require.False(t, bytes.Contains(b, []byte(testPassword)), "%s %q: the answer shows the password", req.Method, req.RequestURI)
	})
}

// readRequestAsServer parses raw as net/http's server does before it
// calls a handler, refusing what the server refuses: a bad request line or
// header, a bad or missing Host, and the requests it answers itself
// (OPTIONS *).
func readRequestAsServer(raw []byte) (*http.Request, error) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, err
	}
	// ReadRequest has moved the Host header to req.Host.
	if (req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != "CONNECT") || !validHeaderValue(req.Host) {
		return nil, errBadRequest
	}
	for k, vs := range req.Header {
		if !validHeaderName(k) {
			return nil, errBadRequest
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return nil, errBadRequest
			}
		}
	}
	if req.RequestURI == "*" && req.Method == "OPTIONS" {
		return nil, errBadRequest
	}
	req.RemoteAddr = "127.0.0.1:40000"
	return req, nil
}

var errBadRequest = &httpError{http.StatusBadRequest, "refused by net/http"}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for _, c := range []byte(s) {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
