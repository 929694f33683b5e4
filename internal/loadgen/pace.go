package loadgen

import (
	"context"
	"sync"
	"time"
)

// pacer spaces the starts of requests evenly at a rate, across every
// client: a steady load, as in a soak, rather than as much as the server
// takes. It is safe for concurrent use; a nil *pacer does not pace.
type pacer struct {
	interval time.Duration

	mu   sync.Mutex
	next time.Time // the start of the next free slot
}

// newPacer returns a pacer for rate requests a second, or nil for rate 0.
func newPacer(rate float64, start time.Time) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate), next: start}
}

// wait takes the next slot and sleeps until it starts. It reports false if
// ctx ended first. A slot that nobody was free to take has passed: a server
// slower than the rate gets fewer requests, not a burst to catch up.
func (p *pacer) wait(ctx context.Context) bool {
	if p == nil {
		return ctx.Err() == nil
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.interval)
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
