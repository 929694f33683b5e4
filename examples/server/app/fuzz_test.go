package app

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// The fuzz targets need no database: they check the request decoding and
// the topology parser. Their seeds run as unit tests in go test.

func FuzzReadJSONName(f *testing.F) {
	for _, s := range []string{`{"name":"Ada"}`, `{"name":""}`, `{"name":5}`, `{"name":"a\u0000"}`, "{\"name\":\"\xff\"}",
		`[]`, `null`, `{"name":"x"}{}`, `{"name":"x","y":1}`, `{"name":"` + strings.Repeat("é", 101) + `"}`, ``, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/users", strings.NewReader(body))
		w := httptest.NewRecorder()
		var in nameBody
		err := readJSON(w, req, &in)
		if err == nil {
			var name string
			name, err = text("name", in.Name, maxName)
			if err == nil {
				require.False(t, !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxName || strings.TrimSpace(name) == "" || strings.ContainsRune(name, 0),
					"accepted name %q", name)
				return
			}
		}
		he, ok := err.(*httpError)
		require.True(t, ok, "error %v is not an httpError", err)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge}, he.status, "status for body %q", body)
		require.True(t, utf8.ValidString(he.msg), "error message %q is not UTF-8", he.msg)
	})
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "007", "+7", "9223372036854775807", "9223372036854775808", "", "1e3", " 1", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseID("id", s)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "id: "), "error %q does not name the field", err)
			return
		}
		require.Positive(t, id, "parseID(%q)", s)
		require.Equal(t, s, strconv.FormatInt(id, 10), "parseID(%q) = %d", s, id)
	})
}

func FuzzParseTopology(f *testing.F) {
	f.Add(goodTopology)
	f.Add("shards:\n  - range: \"-\"\n    primary: postgres://u:$PW@h/db\n")
	f.Add("shards: &a [*a]\n")
	f.Add("shards:\n  - {range: -80, primary: \"host=h password=$PW\"}\n  - {range: 80-, primary: x}\n")
	const secret = "fuzz-Secret-9"
	f.Fuzz(func(t *testing.T, doc string) {
		topo, err := parseTopology("f.yaml", []byte(doc), env(map[string]string{"PW": secret, "PG_PASSWORD": secret}))
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "f.yaml"), "error %q does not name the file", err)
			require.False(t, strings.Contains(err.Error(), secret) && !strings.Contains(doc, secret), "error %q shows the password", err)
			return
		}
		require.NotEmpty(t, topo.Shards, "accepted a topology without shards")
		for _, s := range topo.Shards {
			require.False(t, s.Primary == "" || s.Name == "", "accepted shard %+v", s)
		}
	})
}

// An Idempotency-Key header is accepted only as 1 to 255 printable ASCII
// bytes, and refused otherwise with a 400 that names the header.
func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{"k", "5f0c1e9a-2b7d-4c1e-9a0f-123456789abc", "", " ", "a b", "clé", "\x00", "\x7f", strings.Repeat("k", 255), strings.Repeat("k", 256)} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, key string, twice bool) {
		req := httptest.NewRequest("POST", "/users", nil)
		req.Header[IdempotencyHeader] = []string{key}
		if twice {
			req.Header[IdempotencyHeader] = append(req.Header[IdempotencyHeader], key)
		}
		got, err := idempotencyKey(req)
		valid := !twice && len(key) >= 1 && len(key) <= maxIdempotencyKey && !strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e })
		if valid {
			require.NoError(t, err, "key %q", key)
			require.Equal(t, key, got)
			return
		}
		require.Error(t, err, "key %q accepted", key)
		he, ok := err.(*httpError)
		require.True(t, ok, "error %v is not an httpError", err)
		require.Equal(t, http.StatusBadRequest, he.status)
		require.True(t, strings.HasPrefix(he.msg, IdempotencyHeader+": "), "message %q does not name the header", he.msg)
	})
}
