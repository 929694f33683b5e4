package app

import (
	stdjson "encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type emailUser struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

func TestUsersByEmail(t *testing.T) {
	in := start(t, nil, Options{})
	email := fmt.Sprintf("ada-%d@example.com", time.Now().UnixNano())
	r := in.do("POST", "/users", map[string]string{"name": "Ada", "email": email})
	want(t, "create with email", r, http.StatusCreated)
	var u emailUser
	r.json(t, &u)
	assert.Equal(t, email, u.Email)
	token := r.header.Get("X-Consistency-Token")

	r = in.do("GET", "/users?email="+url.QueryEscape(email), nil, "X-Consistency-Token", token)
	want(t, "GET by email", r, http.StatusOK)
	var got emailUser
	r.json(t, &got)
	assert.Equal(t, u, got)

	r = in.do("POST", "/users", map[string]string{"name": "Imposter", "email": email})
	want(t, "a duplicate email", r, http.StatusConflict)
	assert.Contains(t, r.errorText(t), email)

	// An email is one key whatever its case.
	r = in.do("POST", "/users", map[string]string{"name": "Imposter", "email": "ADA" + email[3:]})
	want(t, "a duplicate email in other case", r, http.StatusConflict)

	for _, bad := range []string{"", "no-at", "@example.com", "a@", "a b@example.com", "a@b@c"} {
		r = in.do("POST", "/users", map[string]string{"name": "x", "email": bad})
		want(t, fmt.Sprintf("email %q", bad), r, http.StatusBadRequest)
		assert.Contains(t, r.errorText(t), "email")
	}
	want(t, "unknown email", in.do("GET", "/users?email=nobody%40example.com", nil), http.StatusNotFound)
	want(t, "no email parameter", in.do("GET", "/users", nil), http.StatusBadRequest)
	want(t, "a second parameter", in.do("GET", "/users?email=a%40b&x=1", nil), http.StatusBadRequest)

	// Retried with its Idempotency-Key, a create with an email replays its answer.
	email2 := "k" + email
	key := fmt.Sprintf("key-%d", time.Now().UnixNano())
	first := in.do("POST", "/users", map[string]string{"name": "Grace", "email": email2}, "Idempotency-Key", key)
	want(t, "keyed create", first, http.StatusCreated)
	again := in.do("POST", "/users", map[string]string{"name": "Grace", "email": email2}, "Idempotency-Key", key)
	want(t, "keyed retry", again, http.StatusCreated)
	assert.Equal(t, string(first.body), string(again.body))
}

// Racing creates with one email, on two instances: one user gets it.
func TestEmailRace(t *testing.T) {
	a, b := start(t, nil, Options{}), start(t, nil, Options{})
	email := fmt.Sprintf("race-%d@example.com", time.Now().UnixNano())
	var mu sync.Mutex
	var created []string
	var wg sync.WaitGroup
	for i := range 8 {
		in := a
		if i%2 == 1 {
			in = b
		}
		wg.Go(func() {
			r := in.do("POST", "/users", map[string]string{"name": fmt.Sprint("racer", i), "email": email})
			if r.status == http.StatusCreated {
				var u emailUser
				r.json(t, &u)
				mu.Lock()
				created = append(created, u.ID)
				mu.Unlock()
			} else {
				assert.Equal(t, http.StatusConflict, r.status, "%s", r.body)
			}
		})
	}
	wg.Wait()
	require.Len(t, created, 1)
	require.Eventually(t, func() bool {
		r := a.do("GET", "/users?email="+url.QueryEscape(email), nil)
		var u emailUser
		return r.status == http.StatusOK && stdjson.Unmarshal(r.body, &u) == nil && u.ID == created[0]
	}, 5*time.Second, 10*time.Millisecond)
}

// The email lookup's tables are in the schema every instance applies.
func TestEmailSchema(t *testing.T) {
	in := start(t, nil, Options{})
	for _, stmt := range in.srv.emails.Schema() {
		assert.Contains(t, schema, stmt)
	}
}

// parseEmail accepts only what it documents, lower-cased, and refuses the
// rest with a 400 that names the field.
func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{"a@b", "Ada@Example.com", "", "@", "a@", "@b", "a b@c", "a@b@c", "a\x00@b", "\xff@b", strings.Repeat("a", 300) + "@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseEmail(s)
		if err != nil {
			he, ok := err.(*httpError)
			if !ok || he.status != http.StatusBadRequest || !strings.Contains(he.msg, "email") {
				t.Fatalf("parseEmail(%q): %v, want a 400 naming the email", s, err)
			}
			return
		}
		if got != strings.ToLower(s) || len(s) > maxEmail || strings.Count(s, "@") != 1 || strings.HasPrefix(s, "@") || strings.HasSuffix(s, "@") ||
			strings.ContainsAny(s, " \t\r\n\x00") || !utf8.ValidString(s) {
			t.Fatalf("parseEmail(%q) accepted %q", s, got)
		}
	})
}
