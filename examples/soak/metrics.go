package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sample is the server's state at one moment, from its /metrics.
type sample struct {
	at         time.Duration // since the load started
	goroutines float64
	rss        float64 // bytes
	heap       float64 // bytes
	fds        float64
	requests   float64 // HTTP requests served so far
	errors5xx  float64
}

// scraper reads the server's /metrics.
type scraper struct {
	client *http.Client
	url    string
}

func (s scraper) sample(ctx context.Context, at time.Duration) (sample, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", s.url, nil)
	if err != nil {
		return sample{}, err
	}
	res, err := s.client.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("GET %s: %s", s.url, res.Status)
	}
	smp, err := parseMetrics(res.Body)
	smp.at = at
	return smp, err
}

// every samples each interval until ctx ends, and returns the samples.
func (s scraper) every(ctx context.Context, interval time.Duration, start time.Time) []sample {
	var out []sample
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		if smp, err := s.sample(ctx, time.Since(start)); err == nil {
			out = append(out, smp)
		}
	}
}

// parseMetrics reads the figures a soak watches from the Prometheus text
// format; go_goroutines and process_resident_memory_bytes are required.
func parseMetrics(r io.Reader) (sample, error) {
	var s sample
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:sp], "{")
		seen[name] = true
		switch name {
		case "go_goroutines":
			s.goroutines = v
		case "process_resident_memory_bytes":
			s.rss = v
		case "go_memstats_heap_alloc_bytes":
			s.heap = v
		case "process_open_fds":
			s.fds = v
		case "pgshard_http_requests_total":
			s.requests += v
			if strings.Contains(labels, `status="5`) {
				s.errors5xx += v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	for _, need := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !seen[need] {
			return s, fmt.Errorf("/metrics has no %s", need)
		}
	}
	return s, nil
}
