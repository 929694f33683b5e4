package loadgen

import (
	"context"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// With a rate, a run makes about rate x duration requests however fast
// the server is; without one, as many as the server answers.
func TestRatePacesRequests(t *testing.T) {
	srv := httptest.NewServer(newAPI())
	defer srv.Close()
	run := func(rate float64) *Report {
		t.Helper()
		rep, err := Run(context.Background(), Options{Targets: []string{srv.URL}, Duration: 500 * time.Millisecond,
			Concurrency: 8, Users: 20, ReadPercent: 60, Seed: 3, Rate: rate})
		require.NoError(t, err)
		return rep
	}
	paced := run(200)
	if paced.Requests < 60 || paced.Requests > 115 {
		t.Errorf("200 req/s for 0.5s: %d requests, want about 100", paced.Requests)
	}
	if free := run(0); free.Requests < 2*paced.Requests {
		t.Errorf("unpaced: %d requests, paced: %d: want the unpaced run well above", free.Requests, paced.Requests)
	}
	if paced.All.Count != paced.Requests || paced.All.P99 < paced.All.P50 {
		t.Errorf("overall figures %+v for %d requests", paced.All, paced.Requests)
	}
}

func TestRateRefused(t *testing.T) {
	for _, r := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := Run(context.Background(), Options{Targets: []string{"http://127.0.0.1:1"}, Rate: r}); err == nil {
			t.Errorf("rate %g accepted", r)
		}
	}
}
