package loadgen

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws a bar on o.Progress until the returned stop is called:
// redrawn in place twice a second on a terminal, a line every 5 s elsewhere.
func (r *runState) progress() (stop func()) {
	w := r.opts.Progress
	if w == nil {
		return func() {}
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := 5 * time.Second
	if tty {
		every = 500 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		last, lastAt := uint64(0), r.started
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintln(w, r.bar(1, last, lastAt, time.Now()))
				}
				return
			case now := <-t.C:
				line := r.bar(0, last, lastAt, now)
				last, lastAt = r.requests.Load(), now
				if tty {
					fmt.Fprint(w, "\r"+line)
				} else {
					fmt.Fprintln(w, line)
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// bar renders one progress line; full forces a complete bar.
func (r *runState) bar(full float64, last uint64, lastAt, now time.Time) string {
	elapsed := now.Sub(r.started)
	frac := min(1, max(full, elapsed.Seconds()/r.opts.Duration.Seconds()))
	const width = 30
	n := int(frac * width)
	reqs := r.requests.Load()
	rate := float64(reqs-last) / max(now.Sub(lastAt).Seconds(), 1e-9)
	if full > 0 {
		rate = float64(reqs) / max(elapsed.Seconds(), 1e-9)
	}
	return fmt.Sprintf("[%s%s] %5.1fs/%s  %8d req  %7.0f req/s  errors %d  violations %d ",
		strings.Repeat("=", n), strings.Repeat(" ", width-n), min(elapsed.Seconds(), r.opts.Duration.Seconds()),
		r.opts.Duration, reqs, rate, r.errors.Load(), r.violations.Load())
}
