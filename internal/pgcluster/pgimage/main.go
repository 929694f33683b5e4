// Command pgimage makes the docker backend's PostgreSQL image present: it builds
// pgshard/postgres:<major> from Debian's packages with no registry (pgcluster.EnsureImage),
// or pulls another image, unless the Docker engine has it already.
//
//	go run ./internal/pgcluster/pgimage [-image pgshard/postgres:15]
//
// The image defaults to $PGSHARD_PG_IMAGE, then pgcluster.DefaultImage.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

func main() {
	image := os.Getenv(pgcluster.EnvImage)
	if image == "" {
		image = pgcluster.DefaultImage
	}
	flag.StringVar(&image, "image", image, "the image to make present")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	began := time.Now()
	if err := pgcluster.EnsureImage(ctx, image, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pgimage:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "pgimage: %s is present (%v)\n", image, time.Since(began).Round(time.Second))
}
