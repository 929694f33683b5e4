package pgcluster_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

// fakeM stands for *testing.M.
type fakeM struct {
	ran bool
	run func() int
}

func (m *fakeM) Run() int {
	m.ran = true
	return m.run()
}

func TestRunMain(t *testing.T) {
	t.Run("fails without running tests when the cluster cannot start", func(t *testing.T) {
		m := &fakeM{run: func() int { return 0 }}
		var c *pgcluster.Cluster
		if code := pgcluster.RunMain(m, pgcluster.Options{Shards: -1}, &c); code != 1 || m.ran || c != nil {
			t.Errorf("RunMain = %d, ran tests %v, cluster %v; want 1, false, nil", code, m.ran, c)
		}
	})
	t.Run("passes the tests' exit code on", func(t *testing.T) {
		var c *pgcluster.Cluster
		m := &fakeM{run: func() int { return 3 }}
		if code := pgcluster.RunMain(m, pgcluster.Options{}, &c); code != 3 || !m.ran {
			t.Errorf("RunMain = %d, ran tests %v; want 3, true", code, m.ran)
		}
		if err := c.Nodes()[0].Start(context.Background()); !errors.Is(err, pgcluster.ErrClosed) {
			t.Errorf("Start after RunMain = %v, want ErrClosed", err)
		}
	})
	t.Run("closes the cluster when a test panics", func(t *testing.T) {
		var c *pgcluster.Cluster
		m := &fakeM{run: func() int { panic("boom") }}
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want the test's panic", r)
				}
			}()
			pgcluster.RunMain(m, pgcluster.Options{}, &c)
		}()
		if c == nil {
			t.Fatal("RunMain did not set the cluster")
		}
		if pid := c.Nodes()[0].PID(); pid != 0 {
			t.Errorf("postmaster %d still runs after the panic", pid)
		}
	})
}
