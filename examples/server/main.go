// Command server is pgshard's reference HTTP server: users and their posts
// over sharded PostgreSQL, with replica reads, a coherent cache,
// read-your-writes tokens, a recent feed gathered from every shard,
// Prometheus metrics and a live shard dashboard. The server itself is the
// importable package github.com/pgshard/pgshard/examples/server/app; this
// command only reads its flags and runs it until SIGINT or SIGTERM.
//
// With no flags it starts a dev cluster (2 shards x 1 replica) and serves on
// 127.0.0.1:8080:
//
//	go run ./examples/server
//	go run ./examples/server -config topology.yaml   # existing servers
//
// Run it with -h for every flag.
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

	"github.com/pgshard/pgshard/examples/server/app"
)

func main() {
	restore := takeTerminal()
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	restore()
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := app.ParseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // from now on, a second Ctrl-C kills at once
	}()
	if err := app.Run(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 1
	}
	return 0
}
