package app

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
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
				if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxName || strings.TrimSpace(name) == "" || strings.ContainsRune(name, 0) {
					t.Fatalf("accepted name %q", name)
				}
				return
			}
		}
		he, ok := err.(*httpError)
		if !ok {
			t.Fatalf("error %v is not an httpError", err)
		}
		switch he.status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for body %q", he.status, body)
		}
		if !utf8.ValidString(he.msg) {
			t.Fatalf("error message %q is not UTF-8", he.msg)
		}
	})
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "007", "+7", "9223372036854775807", "9223372036854775808", "", "1e3", " 1", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseID("id", s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "id: ") {
				t.Fatalf("error %q does not name the field", err)
			}
			return
		}
		if id <= 0 || strconv.FormatInt(id, 10) != s {
			t.Fatalf("parseID(%q) = %d", s, id)
		}
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
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			if strings.Contains(err.Error(), secret) && !strings.Contains(doc, secret) {
				t.Fatalf("error %q shows the password", err)
			}
			return
		}
		if len(topo.Shards) == 0 {
			t.Fatal("accepted a topology without shards")
		}
		for _, s := range topo.Shards {
			if s.Primary == "" || s.Name == "" {
				t.Fatalf("accepted shard %+v", s)
			}
		}
	})
}
