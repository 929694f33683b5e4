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
				// Not r.json: its require would end this goroutine, not the test.
				if !assert.NoError(t, stdjson.Unmarshal(r.body, &u), "body %q", r.body) {
					return
				}
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
			require.True(t, ok && he.status == http.StatusBadRequest && strings.Contains(he.msg, "email"), "parseEmail(%q): %v, want a 400 naming the email", s, err)
			return
		}
		require.False(t, got != strings.ToLower(s) || len(s) > maxEmail || strings.Count(s, "@") != 1 || strings.HasPrefix(s, "@") || strings.HasSuffix(s, "@") ||
			strings.ContainsAny(s, " \t\r\n\x00") || !utf8.ValidString(s), "parseEmail(%q) accepted %q", s, got)
	})
}

// A user changes its email and deletes it: the old email is free at once,
// the new one finds the user, a taken one is refused, and every instance's
// cache shows the change.
func TestChangeAndDeleteEmail(t *testing.T) {
	a, b := start(t, nil, Options{}), start(t, nil, Options{})
	stamp := time.Now().UnixNano()
	first, second, taken := fmt.Sprintf("first-%d@example.com", stamp), fmt.Sprintf("second-%d@example.com", stamp), fmt.Sprintf("taken-%d@example.com", stamp)
	r := a.do("POST", "/users", map[string]string{"name": "Ada", "email": first})
	want(t, "create", r, http.StatusCreated)
	var u emailUser
	r.json(t, &u)
	want(t, "another user", a.do("POST", "/users", map[string]string{"name": "Bob", "email": taken}), http.StatusCreated)
	path := "/users/" + u.ID + "/email"
	byEmail := func(in *instance, email, token string) (int, emailUser) {
		r := in.do("GET", "/users?email="+url.QueryEscape(email), nil, "X-Consistency-Token", token)
		var got emailUser
		if r.status == http.StatusOK {
			r.json(t, &got)
		}
		return r.status, got
	}
	want(t, "B caches the user", b.do("GET", "/users/"+u.ID, nil), http.StatusOK)

	r = a.do("PUT", path, map[string]string{"email": strings.ToUpper(second[:1]) + second[1:]})
	want(t, "change", r, http.StatusOK)
	var changed emailUser
	r.json(t, &changed)
	assert.Equal(t, emailUser{ID: u.ID, Name: "Ada", Email: second}, changed)
	token := r.header.Get("X-Consistency-Token")
	status, got := byEmail(b, second, token)
	assert.Equal(t, http.StatusOK, status, "the new email finds the user, on the other instance too")
	assert.Equal(t, u.ID, got.ID)
	status, _ = byEmail(b, first, token)
	assert.Equal(t, http.StatusNotFound, status, "the old email is free")
	want(t, "someone else takes the old email", a.do("POST", "/users", map[string]string{"name": "Cy", "email": first}), http.StatusCreated)

	r = a.do("PUT", path, map[string]string{"email": taken})
	want(t, "a taken email", r, http.StatusConflict)
	assert.Contains(t, r.errorText(t), taken)
	status, got = byEmail(a, second, token)
	assert.Equal(t, http.StatusOK, status, "a refused change changes nothing")
	assert.Equal(t, u.ID, got.ID)
	want(t, "the same email again", a.do("PUT", path, map[string]string{"email": second}), http.StatusOK)

	r = a.do("DELETE", path, nil)
	want(t, "delete", r, http.StatusOK)
	var deleted emailUser
	r.json(t, &deleted)
	assert.Empty(t, deleted.Email)
	token = r.header.Get("X-Consistency-Token")
	status, _ = byEmail(b, second, token)
	assert.Equal(t, http.StatusNotFound, status, "a deleted email finds no one")
	r = b.do("GET", "/users/"+u.ID, nil, "X-Consistency-Token", token)
	want(t, "the user on B", r, http.StatusOK)
	var onB emailUser
	r.json(t, &onB)
	assert.Empty(t, onB.Email, "B's cache dropped the user")
	want(t, "delete again", a.do("DELETE", path, nil), http.StatusOK)

	want(t, "no such user", a.do("PUT", "/users/1/email", map[string]string{"email": "x@example.com"}), http.StatusNotFound)
	want(t, "no such user", a.do("DELETE", "/users/1/email", nil), http.StatusNotFound)
	want(t, "no email field", a.do("PUT", path, map[string]string{"name": "x"}), http.StatusBadRequest)
	want(t, "a bad email", a.do("PUT", path, map[string]string{"email": "nope"}), http.StatusBadRequest)
}
