package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgshard/pgshard/examples/server/app"
	"github.com/pgshard/pgshard/replica"
)

// 6. Connection exhaustion: ten times more concurrent clients than the
// instance has pool connections. Latency stays bounded (by the request
// timeout), the server does not crash, overload is answered 503 or 429
// rather than queued without end, and memory stays bounded.
func chaosExhaustion(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Connection exhaustion"}
	const maxConns = 4
	a := e.server("a", 161, func(topo *app.Topology) { topo.MaxConns = maxConns }, nil)
	poolConns := 0
	for _, sh := range e.c.Shards() {
		poolConns += maxConns * (1 + len(sh.Replicas))
	}
	clients := 10 * poolConns
	timeout := chaosRequestTimeout

	goroutines := runtime.NumGoroutine()
	runtime.GC()
	debug.FreeOSMemory() // what earlier scenarios left must not hide the growth
	mem := sampleMemory(100 * time.Millisecond)
	began := e.mark("load: %d concurrent clients against %d pool connections (MaxConns %d on each of %d nodes)",
		clients, poolConns, maxConns, poolConns/maxConns)
	lr := e.load(clients, a)
	time.Sleep(e.len.exhaust)
	ended := e.mark("load ends")
	rep := lr.end(t)
	peak, base := mem.stop()
	e.clients(res, rep)

	var samples, saturated int
	a.stats.each(began, ended, func(s *statsSample) {
		samples++
		for _, n := range s.nodes {
			if n.role == replica.RolePrimary && n.acquired >= n.maxConns {
				saturated++
				break
			}
		}
	})
	time.Sleep(time.Second)
	goroutinesAfter := runtime.NumGoroutine()
	obs := e.tl.all(sentIn(began, ended))
	var drained time.Time // when the last request of the overload was answered
	for _, o := range obs {
		drained = later(drained, o.end)
	}
	slowest := maxLatency(obs)
	crash := countObs(obs, func(o *chaosObs) bool { return o.status == 0 || o.status == http.StatusInternalServerError })
	other := countObs(obs, func(o *chaosObs) bool {
		return o.failed() && o.status != http.StatusServiceUnavailable && o.status != http.StatusTooManyRequests
	})
	shed := countObs(obs, func(o *chaosObs) bool {
		return o.status == http.StatusServiceUnavailable || o.status == http.StatusTooManyRequests
	})
	var p99 time.Duration
	for _, r := range rep.Routes {
		p99 = max(p99, r.P99)
	}
	res.Injected = fmt.Sprintf("%d concurrent clients for %s against one instance whose %d nodes have %d pool connections each (%d in all)",
		clients, fmtDur(e.len.exhaust), poolConns/maxConns, maxConns, poolConns)
	res.Saw = fmt.Sprintf("%d requests (%.0f/s); a primary's pool fully in use in %.0f%% of the samples; worst route p99 %s, slowest answer %s (request timeout %s); %d answered 503/429; peak RSS %s (%s before), peak Go heap %s; goroutines %d before, %d a second after",
		len(obs), float64(len(obs))/ended.Sub(began).Seconds(), 100*float64(saturated)/float64(max(samples, 1)), fmtDur(p99),
		fmtDur(slowest), fmtDur(timeout), shed, mib(peak.rss), mib(base.rss), mib(peak.heap), goroutines, goroutinesAfter)
	res.Detect = "n/a: the overload is the load itself"
	res.Recover = "end of the overload -> its last request answered: " + fmtSince(drained, ended, len(obs) > 0)
	e.expect(res, crash == 0, "no crash: no transport error, no 500", fmt.Sprint(crash))
	e.expect(res, other == 0, "overload answered 503 or 429, nothing else", fmt.Sprintf("%d other failures", other))
	e.expectWithin(res, "bounded latency: every answer within the request timeout (+1 s)", slowest, timeout+time.Second, timeout+time.Second, true)
	const memBound = 1 << 30
	e.expect(res, peak.rss-base.rss < memBound, "memory stays bounded (RSS growth under 1 GiB)",
		fmt.Sprintf("peak RSS %s, %s over the %s before", mib(peak.rss), mib(peak.rss-base.rss), mib(base.rss)))
	res.note("Peak RSS is that of the whole test process (the server, loadgen's clients and the suite's records), sampled every 100 ms from /proc/self/status; under -race it is several times larger than the server alone.")
	res.note("Time to recover: from the end of the overload (its clients stop sending) to the answer of the last request sent before: how long the queue took to drain.")
	return res
}

// memSample is the process's memory at one instant.
type memSample struct {
	rss  uint64 // resident set size, bytes
	heap uint64 // Go heap objects, bytes
}

type memSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	base memSample
	peak memSample // written by the sampling goroutine until stop
}

func sampleMemory(every time.Duration) *memSampler {
	m := &memSampler{done: make(chan struct{}), base: readMemory()}
	m.peak = m.base
	m.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-t.C:
			}
			s := readMemory()
			m.peak.rss, m.peak.heap = max(m.peak.rss, s.rss), max(m.peak.heap, s.heap)
		}
	})
	return m
}

// stop ends the sampling and returns the peak and the baseline.
func (m *memSampler) stop() (peak, base memSample) {
	close(m.done)
	m.wg.Wait()
	return m.peak, m.base
}

func readMemory() memSample {
	var s memSample
	ms := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(ms)
	if ms[0].Value.Kind() == metrics.KindUint64 {
		s.heap = ms[0].Value.Uint64()
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			s.rss = kb << 10
		}
	}
	return s
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
