// Command deploy runs the architecture of a scaled-out pgshard service on this machine,
// in Docker: HAProxy in front of 3 reference-server instances, 2 shards x (primary +
// 2 streaming replicas), and Prometheus scraping every instance. Every image is built
// here from Debian's packages and the server's own binary; every process listens on
// 127.0.0.1 (host networking).
//
//	go run ./examples/deploy up      # make deploy: start, print the URLs, run until ^C
//	go run ./examples/deploy down    # make deploy-down: remove what a killed run left
//	go run ./examples/deploy test    # make deploy-test: 60 s of load with faults
//
// It is a small Go launcher rather than a compose file: the shards come from the test
// harness's docker backend (internal/pgcluster), so the replicas are cloned, slotted
// and waited for as in every test, and the faults of deploy-test (kill an instance,
// pause a replica's replay) are the harness's own; loadgen and its consistency checks
// run in the same process. A compose file would need its own clone scripts, health
// ordering and a second tool, docker-compose, to install.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgshard/pgshard/examples/deploy/stack"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: deploy up|down|test [flags]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "up":
		err = up(ctx, args[1:], stdout, stderr)
	case "down":
		var n int
		n, err = stack.Down(ctx)
		fmt.Fprintf(stdout, "removed %d containers\n", n)
	case "test":
		err = test(ctx, args[1:], stdout, stderr)
	default:
		err = fmt.Errorf("unknown command %q: want up, down or test", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "deploy:", err)
		return 1
	}
	return 0
}

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := stackFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Log = stderr
	s, err := stack.Up(ctx, *o)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stderr, "removing the deployment...")
		if err := s.Close(); err != nil {
			fmt.Fprintln(stderr, "deploy:", err)
		}
	}()
	printURLs(stdout, s)
	fmt.Fprintln(stdout, "\nRunning until ^C (or SIGTERM); make deploy-down removes what a killed run left.")
	<-ctx.Done()
	return nil
}

func stackFlags(fs *flag.FlagSet) *stack.Options {
	o := &stack.Options{}
	fs.IntVar(&o.Instances, "instances", 3, "reference-server instances behind HAProxy")
	fs.IntVar(&o.Shards, "shards", 2, "shards")
	fs.IntVar(&o.Replicas, "replicas", 2, "streaming replicas per shard")
	fs.DurationVar(&o.CheckInterval, "check-interval", 500*time.Millisecond, "HAProxy's health check interval")
	return o
}

func printURLs(w io.Writer, s *stack.Stack) {
	fmt.Fprintf(w, "\npgshard deployment: %s\n", s.Cluster)
	fmt.Fprintf(w, "  HAProxy     %s/users   (stats: http://127.0.0.1:%d/)\n", s.URL(), s.Stats)
	for _, in := range s.Instances {
		fmt.Fprintf(w, "  %-10s  %s/debug/shards   (metrics: %s/metrics)\n", in.Name, in.URL(), in.URL())
	}
	fmt.Fprintf(w, "  Prometheus  http://127.0.0.1:%d/\n", s.Prometheus)
	for _, sh := range s.Cluster.Shards() {
		fmt.Fprintf(w, "  %-10s  primary 127.0.0.1:%d, replicas", sh.Name, sh.Primary.Port())
		for _, r := range sh.Replicas {
			fmt.Fprintf(w, " 127.0.0.1:%d", r.Port())
		}
		fmt.Fprintln(w)
	}
}
