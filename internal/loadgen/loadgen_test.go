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

	"github.com/stretchr/testify/require"
)

// api is an in-memory stand-in for the reference server's API, with
// injectable bugs, to test the checker itself. (The real server is tested
// with the checker in examples/server.)
type api struct {
	staleNames bool // GET /users/{id} shows the first name, not the last
	losePosts  bool // every third post is acknowledged but not kept

	mu     sync.Mutex
	next   int64
	first  map[string]string
	names  map[string]string
	posts  map[string][]int64 // per user, oldest first
	all    []int64
	writes int
}

func newAPI() *api {
	return &api{first: map[string]string{}, names: map[string]string{}, posts: map[string][]int64{}}
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var in struct{ Name, Body string }
	json.NewDecoder(r.Body).Decode(&in)
	reply := func(status int, v any) {
		w.Header().Set("X-Consistency-Token", "1.")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == "POST" && r.URL.Path == "/users":
		a.next++
		id := strconv.FormatInt(a.next, 10)
		a.first[id], a.names[id] = in.Name, in.Name
		reply(201, map[string]string{"id": id, "name": in.Name})
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
		reply(200, map[string]string{"id": id, "name": name})
	case len(parts) == 3 && parts[0] == "users" && parts[2] == "posts":
		uid := parts[1]
		if r.Method == "POST" {
			a.next++
			a.writes++
			if !(a.losePosts && a.writes%3 == 0) {
				a.posts[uid] = append(a.posts[uid], a.next)
				a.all = append(a.all, a.next)
			}
			reply(201, map[string]string{"id": strconv.FormatInt(a.next, 10), "user_id": uid})
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
				ps = append(ps, map[string]string{"id": strconv.FormatInt(id, 10), "user_id": uid})
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
		{"lost posts", func(a *api) { a.losePosts = true }, true},
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
			if rep.Failed() != tc.violations {
				t.Errorf("Failed() = %v, want %v; report:\n%s", rep.Failed(), tc.violations, out.String())
			}
			if rep.Requests == 0 || rep.Verify.Users == 0 {
				t.Errorf("no load: %s", out.String())
			}
			wantWord := map[bool]string{true: "FAIL:", false: "OK:"}[tc.violations]
			if !strings.Contains(out.String(), wantWord) {
				t.Errorf("report does not say %s:\n%s", wantWord, out.String())
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
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) succeeded", o)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct{ p, want int }{{50, 50}, {95, 95}, {99, 99}, {100, 100}, {1, 1}} {
		if got := percentile(d, tc.p); got != time.Duration(tc.want) {
			t.Errorf("p%d = %d, want %d", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %d", got)
	}
	if got := percentile(d[:1], 99); got != 1 {
		t.Errorf("p99 of one = %d", got)
	}
}
