package app

import (
	"math"
	"sync"
	"time"
)

// limiter is a token bucket per client key (the client's IP): each key may
// make burst requests at once and rate requests a second on average. It is
// safe for concurrent use. Buckets that have refilled are forgotten, so
// memory follows the number of recently active clients.
type limiter struct {
	rate  float64 // tokens a second
	burst float64
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// newLimiter returns a limiter, or nil (allow everything) when rate <= 0.
// A burst below 1 means max(1, rate).
func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	if rate <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	b := float64(burst)
	if b < 1 {
		b = math.Max(1, rate)
	}
	return &limiter{rate: rate, burst: b, now: now, buckets: map[string]*bucket{}, lastSweep: now()}
}

// allow takes a token from key's bucket. When there is none, it says how
// long until there will be one.
func (l *limiter) allow(key string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep forgets the buckets that are full again: a new bucket is the same.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
}
