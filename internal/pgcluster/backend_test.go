package pgcluster_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

// TestAutoNeverBreaksTheSuite checks that auto runs docker only when an engine answers
// and has the image, and otherwise runs the local servers and says why; and that an
// option only the local backend honours turns an environment's docker into local.
// It cannot run in parallel: it sets the environment.
func TestAutoNeverBreaksTheSuite(t *testing.T) {
	for _, tc := range []struct {
		name       string
		env        string
		opts       pgcluster.Options
		wantReason string
	}{
		{name: "auto without the image", env: "auto", opts: pgcluster.Options{Image: "pgshard/absent:1"}, wantReason: "auto: "},
		{name: "docker from the environment with TLS", env: "docker", opts: pgcluster.Options{TLS: true}, wantReason: "Options.TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(pgcluster.EnvBackend, tc.env)
			c, err := pgcluster.Start(testContext(t), tc.opts)
			require.NoError(t, err)
			defer c.Close()
			assert.Equal(t, pgcluster.BackendLocal, c.Backend())
			assert.Contains(t, c.BackendReason(), tc.wantReason)
		})
	}
	t.Run("docker from Options with TLS", func(t *testing.T) {
		_, err := pgcluster.Start(testContext(t), pgcluster.Options{Backend: pgcluster.BackendDocker, TLS: true})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "Options.TLS needs the local backend")
	})
}

func TestBuildable(t *testing.T) {
	for _, tc := range []struct {
		image string
		want  bool
	}{
		{"pgshard/postgres:15", true},
		{"pgshard/postgres:16", true},
		{"pgshard/postgres:14", false},
		{"pgshard/postgres", false},
		{"pgshard/postgres:latest", false},
		{"postgres:15", false},
		{"evil/pgshard/postgres:15", false},
	} {
		assert.Equal(t, tc.want, pgcluster.Buildable(tc.image), tc.image)
	}
}
