package pgcluster

import (
	"context"
	"fmt"
	"os"
	"time"
)

// M is the part of *testing.M that RunMain uses, called from RunMain's goroutine only.
// Taking an interface keeps the testing package out of the programs that import
// pgcluster for a dev cluster.
type M interface{ Run() int }

// startTimeout bounds RunMain's Start; a docker backend may have an image to pull.
const startTimeout = 5 * time.Minute

// RunMain runs a test package's tests against a cluster: it starts one as opts says,
// stores it in *dst, runs m and closes the cluster, also when a test panics. It returns
// the exit code for os.Exit:
//
//	var cluster *pgcluster.Cluster
//
//	func TestMain(m *testing.M) {
//		os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 2, Replicas: 1}, &cluster))
//	}
//
// When the cluster cannot start, say with neither PostgreSQL binaries nor a Docker engine
// on the machine, RunMain prints why and returns 1 without running a test: a missing
// database must fail CI, not skip its tests in silence.
func RunMain(m M, opts Options, dst **Cluster) (code int) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	c, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgcluster: cannot start the test cluster: %v\n", err)
		return 1
	}
	if why := c.BackendReason(); why != "" {
		fmt.Fprintf(os.Stderr, "pgcluster: local backend: %s\n", why)
	}
	fmt.Fprintf(os.Stderr, "pgcluster: %v: ready in %v\n", c, c.StartupTime().Round(time.Millisecond))
	*dst = c
	defer func() {
		r := recover()
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgcluster: close the test cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		if r != nil {
			panic(r)
		}
	}()
	return m.Run()
}
