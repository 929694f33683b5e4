package app

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// Two instances on the same shards, the second joined through the first's
// -write-topology file: a rename on one is seen by the other's cache within
// 100 ms, without a consistency token.
func TestSecondInstanceSeesRenameWithin100ms(t *testing.T) {
	a := start(t, nil, Options{NodeID: 1})
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := WriteTopology(path, testTopology()); err != nil {
		t.Fatal(err)
	}
	topo, err := LoadTopology(path)
	if err != nil {
		t.Fatal(err)
	}
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
		if !cached {
			t.Fatalf("round %d: B never served the user from its cache", i)
		}

		r := a.do("PUT", "/users/"+u.ID, map[string]string{"name": "after"})
		want(t, "PUT on A", r, http.StatusOK)
		acked := time.Now()
		for {
			r := b.do("GET", "/users/"+u.ID, nil)
			want(t, "GET on B", r, http.StatusOK)
			var got userOut
			r.json(t, &got)
			if got.Name == "after" {
				if d := time.Since(acked); d > 100*time.Millisecond {
					t.Errorf("round %d: B saw the new name %v after A acknowledged it, want within 100ms", i, d)
				} else {
					t.Logf("round %d: B saw the new name after %v (served by %s)", i, d.Round(time.Microsecond), r.header.Get("X-Served-By"))
				}
				break
			}
			if time.Since(acked) > 2*time.Second {
				t.Fatalf("round %d: B still shows %q 2s after the rename", i, got.Name)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
