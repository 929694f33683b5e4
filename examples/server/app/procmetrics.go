package app

import (
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
)

// The process's own figures, under the names the Prometheus Go client
// gives them, so that a soak can tell a leak (growth while the load stays
// the same) from a warm-up, and dashboards need no new names.

// writeProcessMetrics writes goroutines, heap, resident memory and open
// file descriptors. A figure the platform cannot give is left out.
func writeProcessMetrics(p promWriter) {
	p.family("go_goroutines", "gauge", "Number of goroutines that currently exist.")
	p.sample("go_goroutines", float64(runtime.NumGoroutine()))

	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		p.family("go_memstats_heap_alloc_bytes", "gauge", "Number of heap bytes allocated and still in use.")
		p.sample("go_memstats_heap_alloc_bytes", float64(s[0].Value.Uint64()))
	}
	if rss, ok := residentBytes(); ok {
		p.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
		p.sample("process_resident_memory_bytes", float64(rss))
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.family("process_open_fds", "gauge", "Number of open file descriptors.")
		p.sample("process_open_fds", float64(len(fds)))
	}
}

// residentBytes reads the resident set size from /proc/self/statm (Linux):
// its second field, in pages.
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
