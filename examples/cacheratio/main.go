// Command cacheratio measures what read-your-writes sessions cost the
// reference server's users cache: it runs loadgen's default mix against a
// fresh dev server twice, once with clients that carry their
// X-Consistency-Token and once with clients that drop it, and prints the
// users cache's hit ratio and the reads each node role served per second
// in both runs, side by side. A run without tokens may read stale data;
// its stale reads are printed for what they are, not counted as failures.
//
//	go build -o /tmp/server ./examples/server
//	go run ./examples/cacheratio -server /tmp/server -duration 30s
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgshard/pgshard/internal/loadgen"
)

func main() {
	server := flag.String("server", "", "`path` of a built examples/server binary (required)")
	duration := flag.Duration("duration", 30*time.Second, "length of each loadgen run")
	rounds := flag.Int("rounds", 1, "pairs of runs (tokens, then without)")
	concurrency := flag.Int("concurrency", 64, "loadgen's virtual clients")
	users := flag.Int("users", 10000, "loadgen's user population")
	flag.Parse()
	if *server == "" {
		fmt.Fprintln(os.Stderr, "cacheratio: -server is required")
		os.Exit(2)
	}
	fmt.Printf("| run | users cache hits | misses | hit ratio | primary reads/s | replica reads/s | requests/s | stale reads |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for i := range *rounds {
		for _, tokens := range []bool{true, false} {
			r, err := measure(*server, tokens, loadgen.Options{Duration: *duration, Concurrency: *concurrency, Users: *users, Seed: uint64(i + 1)})
			if err != nil {
				fmt.Fprintln(os.Stderr, "cacheratio:", err)
				os.Exit(1)
			}
			name := "with tokens"
			if !tokens {
				name = "without tokens"
			}
			fmt.Printf("| %s | %.0f | %.0f | %.1f%% | %.0f | %.0f | %.0f | %d |\n", name, r.hits, r.misses, 100*r.hits/(r.hits+r.misses),
				r.primary/r.secs, r.replica/r.secs, r.requests/r.secs, r.stale)
		}
	}
}

type result struct {
	hits, misses, primary, replica, requests, secs float64
	stale                                          int
}

// measure starts a fresh dev server, runs loadgen against it and reads its
// /metrics after the run.
func measure(bin string, tokens bool, o loadgen.Options) (result, error) {
	port, err := freePort()
	if err != nil {
		return result{}, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "-listen", addr)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	base := "http://" + addr
	if err := waitHealthy(base, 2*time.Minute); err != nil {
		return result{}, err
	}
	before, err := scrape(base)
	if err != nil {
		return result{}, err
	}
	o.Targets = []string{base}
	o.Client = &http.Client{Timeout: 10 * time.Second, Transport: &tokenFilter{keep: tokens, rt: &http.Transport{MaxIdleConnsPerHost: 256}}}
	rep, err := loadgen.Run(context.Background(), o)
	if err != nil {
		return result{}, err
	}
	secs := rep.Elapsed.Seconds()
	after, err := scrape(base)
	if err != nil {
		return result{}, err
	}
	d := func(k string) float64 { return after[k] - before[k] }
	return result{hits: d("hits"), misses: d("misses"), primary: d("primary"), replica: d("replica"),
		requests: float64(rep.Requests), secs: secs, stale: rep.StaleReads}, nil
}

// tokenFilter drops the consistency token from requests when keep is false.
type tokenFilter struct {
	keep bool
	rt   http.RoundTripper
}

func (f *tokenFilter) RoundTrip(req *http.Request) (*http.Response, error) {
	if !f.keep && req.Header.Get("X-Consistency-Token") != "" {
		req = req.Clone(req.Context())
		req.Header.Del("X-Consistency-Token")
	}
	return f.rt.RoundTrip(req)
}

// scrape sums the users cache's hits and misses and the node reads by role.
func scrape(base string) (map[string]float64, error) {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "pgshard_cache_hits_total{") && strings.Contains(line, `cache="users"`):
			m["hits"] += v
		case strings.HasPrefix(line, "pgshard_cache_misses_total{") && strings.Contains(line, `cache="users"`):
			m["misses"] += v
		case strings.HasPrefix(line, "pgshard_node_reads_total{") && strings.Contains(line, `role="primary"`):
			m["primary"] += v
		case strings.HasPrefix(line, "pgshard_node_reads_total{") && strings.Contains(line, `role="replica"`):
			m["replica"] += v
		}
	}
	return m, sc.Err()
}

func waitHealthy(base string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("server not healthy within " + within.String())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
