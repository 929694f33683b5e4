package cache_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// expirable.LRU from golang-lru v2.0.7, measured in bench_test.go, starts a goroutine that
	// nothing can stop; every goroutine of ours must be gone.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/hashicorp/golang-lru/v2/expirable.NewLRU[...].func1"))
}

// fakeClock is a clock that moves only when told; it is safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	f := &fakeClock{}
	f.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return f
}

func (f *fakeClock) Now() time.Time          { return time.Unix(0, f.ns.Load()) }
func (f *fakeClock) Advance(d time.Duration) { f.ns.Add(int64(d)) }

// evictLog records OnEvict calls; it is safe for concurrent use.
type evictLog struct {
	mu   sync.Mutex
	keys []string
}

func (l *evictLog) record(k, _ any) {
	l.mu.Lock()
	l.keys = append(l.keys, k.(string))
	l.mu.Unlock()
}

func (l *evictLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.keys...)
}

// eventually polls cond for up to a second, for effects of background goroutines.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); !cond(); {
		if time.Now().After(deadline) {
			require.Fail(t, "timed out waiting for "+what)
		}
		time.Sleep(time.Millisecond)
	}
}
