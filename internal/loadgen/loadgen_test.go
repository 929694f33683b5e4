package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// api is an in-memory stand-in for the reference server's API, with
// injectable bugs, to test the checker itself. (The real server is tested
// with the checker in examples/server/app and e2e.)
type api struct {
	staleNames bool // GET /users/{id} shows the first name, not the last
	losePosts  bool // every third post is acknowledged but not kept
	// lostAnswers: every third post is kept but answered 504, as a write
	// whose outcome is unknown; a retry with its Idempotency-Key gets the
	// first answer, unless ignoreKeys, when it makes the post again.
	lostAnswers, ignoreKeys bool
	// retriesRefused: with lostAnswers, a retry with the key is answered
	// 503, as by a server that cannot reach the shard to look the key up;
	// the post was kept all the same.
	retriesRefused bool
	// twoOwners gives an email to every user who asks, not only the first.
	twoOwners bool
	// keepOldEmails: an email a user gave up still finds that user.
	keepOldEmails bool
	// phantoms: every third post is kept but answered 503, which promises
	// that nothing was committed.
	phantoms bool

	mu     sync.Mutex
	next   int64
	first  map[string]string
	names  map[string]string
	email  map[string]string  // user -> email
	owner  map[string]string  // email -> user
	posts  map[string][]int64 // per user, oldest first
	bodies map[int64]string
	keys   map[string][]byte // Idempotency-Key -> the first answer
	all    []int64
	writes int
	noKey  int // POSTs without an Idempotency-Key
}

func newAPI() *api {
	return &api{first: map[string]string{}, names: map[string]string{}, email: map[string]string{}, owner: map[string]string{}, posts: map[string][]int64{},
		bodies: map[int64]string{}, keys: map[string][]byte{}}
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var in struct{ Name, Body, Email string }
	json.NewDecoder(r.Body).Decode(&in)
	reply := func(status int, v any) {
		w.Header().Set("X-Consistency-Token", "1.")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	key := r.Header.Get("Idempotency-Key")
	if r.Method == "POST" && key == "" {
		a.noKey++
	}
	if b, ok := a.keys[key]; ok && r.Method == "POST" && !a.ignoreKeys {
		if a.retriesRefused {
			reply(503, map[string]string{"error": "database did not answer in time"})
			return
		}
		w.WriteHeader(201)
		w.Write(b)
		return
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/users":
		if _, taken := a.owner[in.Email]; taken && in.Email != "" && !a.twoOwners {
			reply(409, map[string]string{"error": "email taken"})
			return
		}
		a.next++
		id := strconv.FormatInt(a.next, 10)
		a.first[id], a.names[id] = in.Name, in.Name
		if in.Email != "" {
			a.email[id], a.owner[in.Email] = in.Email, id
		}
		reply(201, map[string]string{"id": id, "name": in.Name, "email": in.Email})
	case r.Method == "GET" && r.URL.Path == "/users":
		id, ok := a.owner[r.URL.Query().Get("email")]
		if !ok {
			reply(404, map[string]string{"error": "not found"})
			return
		}
		reply(200, map[string]string{"id": id, "name": a.names[id], "email": a.email[id]})
	case r.Method == "GET" && r.URL.Path == "/posts/recent":
		n := min(len(a.all), 20)
		var ps []map[string]string
		for _, id := range slices.Backward(a.all[len(a.all)-n:]) {
			ps = append(ps, map[string]string{"id": strconv.FormatInt(id, 10)})
		}
		reply(200, map[string]any{"posts": ps})
	case len(parts) == 2 && parts[0] == "users":
		id := parts[1]
		if _, ok := a.names[id]; !ok {
			reply(404, map[string]string{"error": "not found"})
			return
		}
		if r.Method == "PUT" {
			a.names[id] = in.Name
		}
		name := a.names[id]
		if a.staleNames && r.Method == "GET" {
			name = a.first[id]
		}
		reply(200, map[string]string{"id": id, "name": name, "email": a.email[id]})
	case len(parts) == 3 && parts[0] == "users" && parts[2] == "email":
		id := parts[1]
		if _, ok := a.names[id]; !ok {
			reply(404, map[string]string{"error": "not found"})
			return
		}
		if r.Method == "DELETE" {
			in.Email = ""
		}
		if holder, taken := a.owner[in.Email]; taken && in.Email != "" && holder != id && !a.twoOwners {
			reply(409, map[string]string{"error": "email taken"})
			return
		}
		if old := a.email[id]; old != "" && a.owner[old] == id && !a.keepOldEmails {
			delete(a.owner, old)
		}
		a.email[id] = in.Email
		if in.Email != "" {
			a.owner[in.Email] = id
		}
		reply(200, map[string]string{"id": id, "name": a.names[id], "email": in.Email})
	case len(parts) == 3 && parts[0] == "users" && parts[2] == "posts":
		uid := parts[1]
		if r.Method == "POST" {
			a.next++
			a.writes++
			if !(a.losePosts && a.writes%3 == 0) {
				a.posts[uid] = append(a.posts[uid], a.next)
				a.all = append(a.all, a.next)
				a.bodies[a.next] = in.Body
			}
			b, _ := json.Marshal(map[string]string{"id": strconv.FormatInt(a.next, 10), "user_id": uid})
			a.keys[key] = b
			if a.phantoms && a.writes%3 == 0 {
				reply(503, map[string]string{"error": "no primary"})
				return
			}
			if a.lostAnswers && a.writes%3 == 0 {
				reply(504, map[string]string{"error": "outcome unknown"})
				return
			}
			reply(201, json.RawMessage(b))
			return
		}
		before := int64(1<<63 - 1)
		if b := r.URL.Query().Get("before"); b != "" {
			before, _ = strconv.ParseInt(b, 10, 64)
		}
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit == 0 {
			limit = 20
		}
		var ps []map[string]string
		for _, id := range slices.Backward(a.posts[uid]) {
			if id < before && len(ps) < limit {
				ps = append(ps, map[string]string{"id": strconv.FormatInt(id, 10), "user_id": uid, "body": a.bodies[id]})
			}
		}
		reply(200, map[string]any{"posts": ps})
	default:
		reply(404, map[string]string{"error": "no such route"})
	}
}

func TestRunFindsInjectedViolations(t *testing.T) {
	tests := []struct {
		name       string
		bug        func(*api)
		violations bool
	}{
		{"correct server", func(*api) {}, false},
		{"stale names", func(a *api) { a.staleNames = true }, true},
		{"an email given twice", func(a *api) { a.twoOwners = true }, true},
		{"an email given up still finds its user", func(a *api) { a.keepOldEmails = true }, true},
		{"lost posts", func(a *api) { a.losePosts = true }, true},
		{"lost answers, keys honoured", func(a *api) { a.lostAnswers = true }, false},
		{"lost answers, keys ignored", func(a *api) { a.lostAnswers, a.ignoreKeys = true, true }, true},
		{"posts refused 503 but kept", func(a *api) { a.phantoms = true }, true},
		// A 503 to a retry says nothing of the first send, which may have
		// committed: the post stays unknown, and is no phantom.
		{"lost answers, retries refused", func(a *api) { a.lostAnswers, a.retriesRefused = true, true }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI()
			tc.bug(a)
			srv := httptest.NewServer(a)
			defer srv.Close()
			rep, err := Run(context.Background(), Options{Targets: []string{srv.URL + "/"}, Duration: 300 * time.Millisecond,
				Concurrency: 4, Users: 20, ReadPercent: 60, Seed: 7})
			require.NoError(t, err)
			var out strings.Builder
			rep.Write(&out)
			assert.Equal(t, tc.violations, rep.Failed(), "Failed(); report:\n%s", out.String())
			assert.NotZero(t, rep.Requests, "requests")
			assert.NotZero(t, rep.Verify.Users, "users verified")
			assert.Contains(t, out.String(), map[bool]string{true: "FAIL:", false: "OK:"}[tc.violations])
			assert.Zero(t, a.noKey, "POSTs sent without an Idempotency-Key")
			if a.phantoms {
				assert.NotZero(t, rep.Verify.Phantoms, "refused posts found")
				assert.Contains(t, out.String(), "refused but committed")
			}
			if a.retriesRefused {
				assert.Zero(t, rep.Verify.Phantoms, "posts whose first answer was a 504 counted as refused")
				assert.NotZero(t, rep.Unresolved, "POSTs left unknown")
			}
			if a.lostAnswers {
				assert.NotZero(t, rep.Retries, "POSTs retried after a 504")
				assert.Contains(t, out.String(), "retried with their Idempotency-Key")
				assert.Equal(t, a.ignoreKeys, rep.Verify.Duplicates > 0, "duplicated posts: %d", rep.Verify.Duplicates)
			}
		})
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{},
		{Targets: []string{"127.0.0.1:8080"}},
		{Targets: []string{"ftp://x"}},
		{Targets: []string{"http://x"}, ReadPercent: 101},
	} {
		_, err := Run(context.Background(), o)
		assert.Error(t, err, "Run(%+v)", o)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct{ p, want int }{{50, 50}, {95, 95}, {99, 99}, {100, 100}, {1, 1}} {
		assert.Equal(t, time.Duration(tc.want), percentile(d, tc.p), "p%d", tc.p)
	}
	assert.Zero(t, percentile(nil, 50), "p50 of nothing")
	assert.Equal(t, time.Duration(1), percentile(d[:1], 99), "p99 of one")
}
