package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pgshard/pgshard/internal/loadgen"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
process_resident_memory_bytes 1.048576e+07
go_memstats_heap_alloc_bytes 2097152
process_open_fds 17
pgshard_http_requests_total{route="GET /users/{id}",status="200"} 100
pgshard_http_requests_total{route="POST /users",status="503"} 3
pgshard_http_requests_total{route="unmatched",status="404"} 2
pgshard_http_request_duration_seconds_count{route="POST /users",status="503"} 3
`
	got, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := sample{goroutines: 42, rss: 10 << 20, heap: 2 << 20, fds: 17, requests: 105, errors5xx: 3}
	if got != want {
		t.Errorf("parseMetrics = %+v, want %+v", got, want)
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines 1\n")); err == nil {
		t.Error("metrics without process_resident_memory_bytes accepted")
	}
}

func TestSummary(t *testing.T) {
	all := loadgen.RouteStats{Route: "all", Count: 6000, P50: time.Millisecond, P95: 3 * time.Millisecond, P99: 9 * time.Millisecond}
	s := &summary{
		cfg:      config{duration: 10 * time.Minute, sample: 10 * time.Second, rate: 10, concurrency: 4, users: 100, read: 90, shards: 4, replicas: 1, seed: 1},
		when:     time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		topology: "dev cluster", goVersion: "go1.26", platform: "linux/amd64", cpus: 2, pid: 99,
		report:     &loadgen.Report{Elapsed: 10 * time.Minute, Requests: 6000, All: all, Routes: []loadgen.RouteStats{all}, ByStatus: map[int]int{200: 6000}},
		idleBefore: sample{goroutines: 20, rss: 20 << 20},
		idleAfter:  sample{goroutines: 21, rss: 40 << 20},
		serverExit: "exited cleanly on SIGINT",
	}
	for i := 1; i <= 60; i++ {
		s.series = append(s.series, sample{at: time.Duration(i) * 10 * time.Second, goroutines: 50, rss: float64(39<<20 + i<<14), requests: float64(i * 100)})
	}
	s.endOfLoad = s.series[59]
	md := s.markdown()
	for _, want := range []string{"**10.0 req/s**", "**p99 9.00 ms**", "| errors | **0**", "| consistency violations | **0**",
		"20 idle before the load", "OK: no error", "goroutines back to idle (+1)", "| 10m0s | 10 |", "| 1m0s | 10 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	if n := strings.Count(md, "\n| ") - strings.Count(md, "\n| figure") - strings.Count(md, "\n| route") - strings.Count(md, "\n| time"); n > 30 {
		t.Errorf("summary has %d table rows: want about one a minute", n)
	}
	s.idleAfter.goroutines = 60
	s.report.StaleReads = 1
	if md := s.markdown(); !strings.Contains(md, "FAIL: 0 errors, 1 consistency violations") || !strings.Contains(md, "WARNING: +40 goroutines") {
		t.Errorf("a failed soak's verdict:\n%s", md)
	}
	if s.ok() {
		t.Error("ok() with a violation")
	}
}
