// Command capacity measures what the deployment of examples/deploy serves per core under
// loadgen's default mix, and writes docs/capacity.md: how many app instances, shards and
// replicas a given number of users implies, with the assumptions stated.
//
//	go run ./examples/capacity -users 1000000 -rpm 10 -peak 3
//	go run ./examples/capacity -from docs/capacity.json -users 5000000   # re-plan, no new measurement
//
// A measurement brings the deployment up (Docker, as make deploy), drives it through
// HAProxy for -measure, and reads every container's CPU time before and after.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgshard/pgshard/examples/deploy/stack"
	"github.com/pgshard/pgshard/internal/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("capacity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a Assumptions
	fs.IntVar(&a.Users, "users", 1_000_000, "active users")
	fs.Float64Var(&a.RPM, "rpm", 10, "requests per user per minute")
	fs.Float64Var(&a.Peak, "peak", 3, "peak over the average")
	fs.IntVar(&a.AppCores, "app-cores", 4, "cores of one app instance")
	fs.IntVar(&a.DBCores, "db-cores", 8, "cores of one database server")
	fs.Float64Var(&a.Headroom, "headroom", 0.7, "the share of CPU a server may use at peak")
	fs.IntVar(&a.MinReplicas, "min-replicas", 2, "replicas per shard at least")
	fs.IntVar(&a.MinAppServers, "min-app", 3, "app instances at least")
	measure := fs.Duration("measure", 60*time.Second, "how long to drive the deployment")
	concurrency := fs.Int("concurrency", 32, "loadgen's virtual clients")
	from := fs.String("from", "", "plan from this measurement (a capacity.json) instead of measuring")
	out := fs.String("out", "docs/capacity.md", "the document to write (capacity.json goes beside it)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var m Measurement
	var err error
	if *from != "" {
		var b []byte
		if b, err = os.ReadFile(*from); err == nil {
			err = json.Unmarshal(b, &m)
		}
	} else {
		m, err = measureStack(ctx, *measure, *concurrency, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "capacity:", err)
		return 1
	}
	p, err := plan(m, a)
	if err != nil {
		fmt.Fprintln(stderr, "capacity:", err)
		return 1
	}
	command := fmt.Sprintf("go run ./examples/capacity -users %d -rpm %g -peak %g", a.Users, a.RPM, a.Peak)
	doc := render(m, a, p, command)
	fmt.Fprint(stdout, doc)
	if *out != "" {
		js, _ := json.MarshalIndent(m, "", "  ")
		err := errors.Join(os.MkdirAll(filepath.Dir(*out), 0o755),
			os.WriteFile(*out, []byte(doc), 0o644))
		if err == nil && *from == "" {
			err = os.WriteFile(filepath.Join(filepath.Dir(*out), "capacity.json"), append(js, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "capacity:", err)
			return 1
		}
	}
	return 0
}

// measureStack brings the deployment up, warms it, and measures one run of loadgen.
func measureStack(ctx context.Context, d time.Duration, concurrency int, log io.Writer) (Measurement, error) {
	s, err := stack.Up(ctx, stack.Options{Log: log})
	if err != nil {
		return Measurement{}, err
	}
	defer s.Close()
	fmt.Fprintln(log, "warming up for 10 s...")
	if _, err := loadgen.Run(ctx, loadgen.Options{Targets: []string{s.URL()}, Duration: 10 * time.Second,
		Concurrency: concurrency, Users: 2000}); err != nil {
		return Measurement{}, err
	}
	cpu0, err := s.CPU(ctx)
	if err != nil {
		return Measurement{}, err
	}
	met0, err := scrapeAll(ctx, s)
	if err != nil {
		return Measurement{}, err
	}
	rep, err := loadgen.Run(ctx, loadgen.Options{Targets: []string{s.URL()}, Duration: d,
		Concurrency: concurrency, Users: 2000, Progress: log})
	if err != nil {
		return Measurement{}, err
	}
	// The load phase ends before loadgen's final check: read the counters now, close
	// enough to the load's end on the scale of a minute.
	cpu1, err := s.CPU(ctx)
	if err != nil {
		return Measurement{}, err
	}
	met1, err := scrapeAll(ctx, s)
	if err != nil {
		return Measurement{}, err
	}
	m := Measurement{
		Date:        time.Now().UTC().Format("2006-01-02"),
		Machine:     fmt.Sprintf("this project's machine (%d cores, shared with other work)", runtime.NumCPU()),
		Deployment:  fmt.Sprintf("%d app instances behind HAProxy, %s", len(s.Instances), s.Cluster),
		Seconds:     rep.Elapsed.Seconds(),
		Requests:    rep.Requests,
		Errors:      rep.Errors,
		Instances:   len(s.Instances),
		Shards:      len(s.Cluster.Shards()),
		ReplicasPer: len(s.Cluster.Shards()[0].Replicas),
		DBReads:     met1["pgshard_node_reads_total"] - met0["pgshard_node_reads_total"],
		DBWrites:    met1["pgshard_node_writes_total"] - met0["pgshard_node_writes_total"],
		CacheHits:   met1["pgshard_cache_hits_total"] - met0["pgshard_cache_hits_total"],
		CacheMisses: met1["pgshard_cache_misses_total"] - met0["pgshard_cache_misses_total"],
	}
	for _, r := range rep.Routes {
		if strings.HasPrefix(r.Route, "POST ") || strings.HasPrefix(r.Route, "PUT ") {
			m.Writes += r.Count
		}
	}
	for name, t1 := range cpu1 {
		sec := (t1 - cpu0[name]).Seconds()
		switch {
		case strings.HasPrefix(name, "app"):
			m.AppCPU += sec
		case strings.HasSuffix(name, "-primary"):
			m.PrimaryCPU += sec
		case strings.Contains(name, "-replica"):
			m.ReplicaCPU += sec
		case name == "haproxy":
			m.HAProxyCPU += sec
		}
	}
	return m, nil
}

// scrapeAll sums, over every instance, the counters capacity reads from /metrics.
func scrapeAll(ctx context.Context, s *stack.Stack) (map[string]float64, error) {
	sum := map[string]float64{}
	for _, in := range s.Instances {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.URL()+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' {
				continue
			}
			name, rest := line, ""
			if i := strings.IndexAny(line, "{ "); i >= 0 {
				name, rest = line[:i], line[i:]
			}
			switch name {
			case "pgshard_node_reads_total", "pgshard_node_writes_total", "pgshard_cache_hits_total", "pgshard_cache_misses_total":
			default:
				continue
			}
			fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
			if len(fields) == 0 {
				continue
			}
			if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
				sum[name] += v
			}
		}
		resp.Body.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return sum, nil
}
