package e2e

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/pgshard/pgshard/router"
)

// testPassword is the clusters' password: distinctive, so that a test can
// look for it where it must never appear.
const testPassword = "Sup3r-s3cret_pw"

// syncBuffer is a bytes.Buffer safe for concurrent use: a server's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// waitListening waits until every reachable shard's cache listener is up,
// so that cached reads use the cache.
func waitListening(t testing.TB, r *router.Router) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		up := true
		for _, s := range r.Stats().Shards {
			up = up && (s.Listening || s.Replica.Primary == "")
		}
		if up {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("cache listeners not up within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
