package loadgen

import (
	"context"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
	// A low rate, so that even a machine under heavy load answers an
	// unpaced run far faster: a pacer can only be checked from above.
	paced := run(20)
	assert.GreaterOrEqual(t, paced.Requests, 1, "20 req/s for 0.5s")
	assert.LessOrEqual(t, paced.Requests, 15, "20 req/s for 0.5s: want about 10")
	free := run(0)
	assert.Greater(t, free.Requests, 2*paced.Requests, "unpaced against paced: want the unpaced run well above")
	assert.Equal(t, paced.Requests, paced.All.Count, "overall count")
	assert.GreaterOrEqual(t, paced.All.P99, paced.All.P50, "overall p99 against p50")
}

func TestRateRefused(t *testing.T) {
	for _, r := range []float64{-1, math.NaN(), math.Inf(1)} {
		_, err := Run(context.Background(), Options{Targets: []string{"http://127.0.0.1:1"}, Rate: r})
		assert.Errorf(t, err, "rate %g accepted", r)
	}
}
