// Command loadgen drives pgshard's reference server with a realistic mix
// of requests (create users, post, read users, read posts, the recent
// feed) and checks read-your-writes consistency as it goes: each virtual
// client carries its X-Consistency-Token, every read of its own data must
// show its acknowledged writes, and at the end every acknowledged write is
// read back. It exits 1 on any violation.
//
//	go run ./examples/loadgen -url http://127.0.0.1:8080 -duration 30s -concurrency 64 -users 10000 -read 90
//	go run ./examples/loadgen -targets http://127.0.0.1:8080,http://127.0.0.1:8081
//	go run ./examples/loadgen -rate 300 -duration 10m   # a steady 300 requests a second
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pgshard/pgshard/internal/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "http://127.0.0.1:8080", "base `URL` of the server")
	targets := fs.String("targets", "", "comma-separated base URLs of several instances, used in turn (overrides -url)")
	duration := fs.Duration("duration", 30*time.Second, "how long to drive load, before the final check")
	concurrency := fs.Int("concurrency", 64, "virtual clients, each with one request in flight")
	rate := fs.Float64("rate", 0, "steady request rate across all clients, a second (0: as fast as the server answers)")
	users := fs.Int("users", 10000, "size of the user population to create")
	read := fs.Int("read", 90, "percentage of reads, 0 to 100")
	seed := fs.Uint64("seed", 0, "random seed, for a repeatable mix (0: random)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o := loadgen.Options{Targets: []string{*target}, Duration: *duration, Concurrency: *concurrency, Rate: *rate,
		Users: *users, ReadPercent: *read, Seed: *seed, Progress: stderr}
	if *targets != "" {
		o.Targets = strings.Split(*targets, ",")
	}
	if *read == 0 {
		o.ReadPercent = loadgen.ReadPercentZero
	}
	if *quiet {
		o.Progress = nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	rep.Write(stdout)
	if rep.Failed() {
		return 1
	}
	return 0
}
