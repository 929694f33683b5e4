// Command soak runs pgshard's reference server as a process of its own on a
// dev cluster (4 shards x 1 replica), drives it with loadgen at a steady
// rate for 10 minutes, samples the server's goroutines and memory from its
// /metrics throughout, stops it, and prints a markdown summary:
// throughput, latency, errors, consistency violations, and goroutines and
// resident memory at start and end, where a leak shows as growth.
//
//	go run ./examples/soak                                  # make soak
//	go run ./examples/soak -duration 1m -rate 500 -out soak.md
//
// It exits 1 if the load saw an error or a consistency violation.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/pgshard/pgshard/internal/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	duration, sample   time.Duration
	rate               float64
	concurrency, users int
	read               int
	shards, replicas   int
	seed               uint64
	server, out        string
}

func run(args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.duration, "duration", 10*time.Minute, "how long the load lasts")
	fs.Float64Var(&c.rate, "rate", 1000, "steady request rate across all clients, a second (about a quarter of what a 2-core machine serves)")
	fs.IntVar(&c.concurrency, "concurrency", 32, "virtual clients: at most this many requests in flight")
	fs.IntVar(&c.users, "users", 10000, "size of the user population")
	fs.IntVar(&c.read, "read", 90, "percentage of reads, 1 to 100")
	fs.IntVar(&c.shards, "shards", 4, "dev cluster: shards")
	fs.IntVar(&c.replicas, "replicas", 1, "dev cluster: streaming replicas per shard")
	fs.Uint64Var(&c.seed, "seed", 1, "loadgen's random seed")
	fs.DurationVar(&c.sample, "sample", 10*time.Second, "how often to read the server's /metrics")
	fs.StringVar(&c.server, "server", "", "the server `binary` to run (default: go build ./examples/server into a temporary folder)")
	fs.StringVar(&c.out, "out", "", "also write the markdown summary to this `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if c.rate <= 0 || c.read < 1 || c.read > 100 || c.duration <= 0 || c.sample <= 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "soak: want -rate > 0, -read 1 to 100, positive -duration and -sample, and no arguments")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := soak(ctx, c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	md := sum.markdown()
	fmt.Fprint(stdout, md)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(md), 0o644); err != nil {
			fmt.Fprintln(stderr, "soak:", err)
			return 1
		}
	}
	if !sum.ok() {
		return 1
	}
	return 0
}

// soak does the run: build, start, load and sample, stop.
func soak(ctx context.Context, c config, log io.Writer) (*summary, error) {
	dir, err := os.MkdirTemp("", "pgshard-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := c.server
	if bin == "" {
		fmt.Fprintln(log, "soak: building the server...")
		if bin, err = buildServer(ctx, dir); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(log, "soak: starting the server with a dev cluster of %d shard(s) x (1 primary + %d replica(s))...\n", c.shards, c.replicas)
	srv, err := startServer(ctx, bin, dir, "-shards", fmt.Sprint(c.shards), "-replicas", fmt.Sprint(c.replicas),
		"-listen", "127.0.0.1:0", "-log-level", "warn")
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.stop(log)
		}
	}()
	if err := srv.waitReady(ctx, time.Minute); err != nil {
		return nil, err
	}
	sum := &summary{cfg: c, when: time.Now(), topology: srv.topology, cpus: runtime.NumCPU(), goVersion: runtime.Version(),
		platform: runtime.GOOS + "/" + runtime.GOARCH, pid: srv.cmd.Process.Pid}
	scrape := scraper{client: &http.Client{Timeout: 10 * time.Second}, url: srv.base + "/metrics"}
	if sum.idleBefore, err = scrape.sample(ctx, 0); err != nil {
		return nil, err
	}

	fmt.Fprintf(log, "soak: %s of load at %g req/s on %s (pid %d)\n", c.duration, c.rate, srv.base, srv.cmd.Process.Pid)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.DisableCompression = 2*c.concurrency, 2*c.concurrency, true
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	samples := make(chan []sample, 1)
	loadCtx, endLoad := context.WithCancel(ctx)
	start := time.Now()
	go func() { samples <- scrape.every(loadCtx, c.sample, start) }()
	rep, err := loadgen.Run(ctx, loadgen.Options{Targets: []string{srv.base}, Duration: c.duration, Concurrency: c.concurrency,
		Rate: c.rate, Users: c.users, ReadPercent: c.read, Seed: c.seed, Client: client, Progress: log})
	endLoad()
	sum.series = <-samples
	if err != nil {
		return nil, err
	}
	sum.report = rep
	if sum.endOfLoad, err = scrape.sample(ctx, time.Since(start)); err != nil {
		return nil, err
	}
	// Idle again: the load's connections closed, a moment to wind down.
	tr.CloseIdleConnections()
	time.Sleep(3 * time.Second)
	if sum.idleAfter, err = scrape.sample(ctx, time.Since(start)); err != nil {
		return nil, err
	}
	stopped = true
	sum.serverExit = srv.stop(log)
	return sum, nil
}
