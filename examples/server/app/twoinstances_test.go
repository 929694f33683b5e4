package app

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two instances on the same shards, the second joined through the first's
// -write-topology file: a rename on one reaches the other's cache through
// the invalidation it listens for, without a consistency token, long before
// the cache's TTL (5 min) could expire the entry. How soon (about a
// millisecond when the machine is idle) is logged, not asserted: a timing
// on a shared machine is not a test.
func TestSecondInstanceSeesRenameWithoutToken(t *testing.T) {
	a := start(t, nil, Options{NodeID: 1})
	path := filepath.Join(t.TempDir(), "topology.yaml")
	require.NoError(t, WriteTopology(path, testTopology()))
	topo, err := LoadTopology(path)
	require.NoError(t, err)
	b := start(t, topo, Options{NodeID: 2})

	for i := range 5 {
		u, token := a.createUser("before")
		// B reads it (with A's token, so it cannot miss) and caches it.
		want(t, "GET on B", b.do("GET", "/users/"+u.ID, nil, "X-Consistency-Token", token), http.StatusOK)
		cached := false
		for range 50 {
			r := b.do("GET", "/users/"+u.ID, nil)
			if r.status == http.StatusOK && r.header.Get("X-Served-By") == "cache" {
				cached = true
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		require.Truef(t, cached, "round %d: B never served the user from its cache", i)

		r := a.do("PUT", "/users/"+u.ID, map[string]string{"name": "after"})
		want(t, "PUT on A", r, http.StatusOK)
		acked := time.Now()
		for {
			r := b.do("GET", "/users/"+u.ID, nil)
			want(t, "GET on B", r, http.StatusOK)
			var got userOut
			r.json(t, &got)
			if got.Name == "after" {
				t.Logf("round %d: B saw the new name after %v (served by %s)", i, time.Since(acked).Round(time.Microsecond), r.header.Get("X-Served-By"))
				break
			}
			require.Lessf(t, time.Since(acked), 30*time.Second, "round %d: B still shows %q: the invalidation never reached its cache", i, got.Name)
			time.Sleep(time.Millisecond)
		}
	}
}
