package app

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// /metrics carries the process's own figures, which a soak watches for
// leaks, in valid exposition format.
func TestProcessMetrics(t *testing.T) {
	in := start(t, nil, Options{})
	r := in.do("GET", "/metrics", nil)
	want(t, "metrics", r, http.StatusOK)
	m := string(r.body)
	checkExposition(t, m)
	names := []string{"go_goroutines", "go_memstats_heap_alloc_bytes"}
	if runtime.GOOS == "linux" {
		names = append(names, "process_resident_memory_bytes", "process_open_fds")
	}
	for _, name := range names {
		i := strings.Index(m, "\n"+name+" ")
		if i < 0 {
			t.Errorf("metrics lack %s", name)
			continue
		}
		line, _, _ := strings.Cut(m[i+1:], "\n")
		v, err := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
		if err != nil || v <= 0 {
			t.Errorf("%q: want a positive value", line)
		}
	}
	if rss, ok := residentBytes(); runtime.GOOS == "linux" && (!ok || rss < 1<<20 || rss > 16<<30) {
		t.Errorf("residentBytes = %d, %v: want a plausible size", rss, ok)
	}
}
