package pgcluster_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

func itoa(i int) string { return strconv.Itoa(i) }

func TestParseBackend(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want pgcluster.Backend
		err  bool
	}{
		{in: "", want: pgcluster.BackendAuto},
		{in: "auto", want: pgcluster.BackendAuto},
		{in: "local", want: pgcluster.BackendLocal},
		{in: "docker", want: pgcluster.BackendDocker},
		{in: " Docker\n", want: pgcluster.BackendDocker},
		{in: "LOCAL", want: pgcluster.BackendLocal},
		{in: "podman", err: true},
		{in: "local,docker", err: true},
	} {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			got, err := pgcluster.ParseBackend(tc.in)
			if tc.err {
				if !errors.Is(err, pgcluster.ErrUnknownBackend) || !strings.Contains(err.Error(), strconv.Quote(tc.in)) {
					t.Errorf("ParseBackend(%q) error = %v, want ErrUnknownBackend naming the value", tc.in, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseBackend(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestBackendSelection checks how Start picks its backend from Options.Backend and
// $PGSHARD_PG_BACKEND. It cannot run in parallel: it sets the environment.
func TestBackendSelection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     string
		backend pgcluster.Backend
		want    pgcluster.Backend // when Start succeeds
		wantErr error
	}{
		{name: "unknown env value", env: "podman", wantErr: pgcluster.ErrUnknownBackend},
		{name: "unknown option", env: "local", backend: "vm", wantErr: pgcluster.ErrUnknownBackend},
		{name: "option wins over env", env: "podman", backend: pgcluster.BackendLocal, want: pgcluster.BackendLocal},
		{name: "env local", env: "local", want: pgcluster.BackendLocal},
		// Where no engine answers, docker must fail clearly; where one does, it must work.
		{name: "docker", backend: pgcluster.BackendDocker, want: pgcluster.BackendDocker, wantErr: pgcluster.ErrNoDocker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(pgcluster.EnvBackend, tc.env)
			c, err := pgcluster.Start(testContext(t), pgcluster.Options{Backend: tc.backend})
			if err == nil {
				defer c.Close()
				if c.Backend() != tc.want {
					t.Errorf("Backend() = %q, want %q", c.Backend(), tc.want)
				}
				return
			}
			if tc.wantErr == nil || !errors.Is(err, tc.wantErr) {
				t.Errorf("Start error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  pgcluster.Options
		field string
	}{
		{"negative shards", pgcluster.Options{Shards: -1}, "Options.Shards"},
		{"too many replicas", pgcluster.Options{Replicas: 9}, "Options.Replicas"},
		{"user with newline", pgcluster.Options{User: "a\nb"}, "Options.User"},
		{"long database", pgcluster.Options{Database: strings.Repeat("d", 64)}, "Options.Database"},
		{"bad setting name", pgcluster.Options{Settings: map[string]string{"a b": "1"}}, "Options.Settings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := pgcluster.Start(testContext(t), tc.opts)
			if err == nil {
				_ = c.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error = %v, want it to name %s", err, tc.field)
			}
		})
	}
}
