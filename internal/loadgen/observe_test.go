package loadgen

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every request of the load reaches Observe once, with its answer; the
// final check's do not.
func TestObserveSeesEveryRequest(t *testing.T) {
	srv := httptest.NewServer(newAPI())
	defer srv.Close()
	var (
		mu  sync.Mutex
		obs []Observation
	)
	rep, err := Run(context.Background(), Options{Targets: []string{srv.URL}, Duration: 200 * time.Millisecond,
		Concurrency: 3, Users: 10, ReadPercent: 50, Seed: 3, Observe: func(o Observation) {
			mu.Lock()
			defer mu.Unlock()
			obs = append(obs, o)
		}})
	require.NoError(t, err)
	if len(obs) != rep.Requests {
		t.Fatalf("%d observations, want one per request: %d", len(obs), rep.Requests)
	}
	routes := map[string]bool{}
	for _, o := range obs {
		routes[o.Route] = true
		if o.Status == 0 || o.Header == nil || o.Start.IsZero() || o.Latency <= 0 || o.Target != srv.URL ||
			!strings.HasPrefix(o.Path, "/") || o.Client < 0 || o.Client >= 3 {
			t.Fatalf("incomplete observation: %+v", o)
		}
	}
	for _, r := range []string{"POST /users", "GET /users/{id}", "POST /users/{id}/posts"} {
		if !routes[r] {
			t.Errorf("no observation of %s (saw %v)", r, routes)
		}
	}
}
