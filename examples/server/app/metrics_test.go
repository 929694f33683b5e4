package app

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// /metrics carries the process's own figures (client_golang's Go and
// process collectors), which a soak watches for leaks, in valid exposition
// format.
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
		if !assert.GreaterOrEqual(t, i, 0, "metrics lack %s", name) {
			continue
		}
		line, _, _ := strings.Cut(m[i+1:], "\n")
		v, err := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
		assert.NoError(t, err, line)
		assert.Positive(t, v, line)
	}
}
