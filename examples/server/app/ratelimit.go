package app

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per client key (the client's IP), each a
// rate.Limiter: each key may make burst requests at once and rate requests
// a second on average. It is safe for concurrent use. Buckets that have
// refilled are forgotten, so memory follows the number of recently active
// clients.
type limiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

// newLimiter returns a limiter, or nil (allow everything) when r <= 0.
// A burst below 1 means max(1, r), rounded up.
func newLimiter(r float64, burst int, now func() time.Time) *limiter {
	if r <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	if burst < 1 {
		burst = int(math.Ceil(math.Max(1, r)))
	}
	return &limiter{rate: rate.Limit(r), burst: burst, now: now, buckets: map[string]*rate.Limiter{}, lastSweep: now()}
}

// allow takes a token from key's bucket. When there is none, it says how
// long until there will be one, and takes nothing.
func (l *limiter) allow(key string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	if now.Sub(l.lastSweep) > time.Minute {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = rate.NewLimiter(l.rate, l.burst)
		b.SetLimitAt(now, l.rate) // start the bucket full at now, on the injected clock
		l.buckets[key] = b
	}
	l.mu.Unlock()
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets the buckets that are full again: a new bucket is the same.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
}
