// Package loadgen drives pgshard's reference server with a realistic mix of
// requests from many virtual clients and checks, as it goes and at the end,
// that no client ever misses its own acknowledged writes. It is the core
// of examples/loadgen and of the tests that run it in-process.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a run. Targets is required; every other zero field
// takes the default its comment gives.
type Options struct {
	// Targets are the base URLs of the server instances, such as
	// http://127.0.0.1:8080; requests go to them in turn, as a load
	// balancer would send them.
	Targets []string
	// Duration is how long the load lasts, before the final check.
	// Default 30 s.
	Duration time.Duration
	// Concurrency is the number of virtual clients, each with one request
	// in flight. Default 64.
	Concurrency int
	// Rate, if positive, is a steady request rate across all clients, a
	// second: requests start evenly spaced, and Concurrency only bounds how
	// many are in flight. A server slower than the rate gets fewer; missed
	// starts are not made up for in a burst. Zero means no pacing: each
	// client sends its next request as soon as its last one is answered.
	Rate float64
	// Users is the size of the user population: clients create users
	// until there are this many. Default 10,000.
	Users int
	// ReadPercent is the share of reads among requests, 0 to 100.
	// Default 90; use ReadPercentZero for none.
	ReadPercent int
	// Client sends the requests. Nil means a client with keep-alive
	// connections for every virtual client and a 10 s timeout.
	Client *http.Client
	// Progress, if set, receives a progress bar (redrawn in place on a
	// terminal, a line every 5 s otherwise).
	Progress io.Writer
	// Seed makes the mix repeatable; 0 means a fresh one.
	Seed uint64
	// Observe, if set, is called with every request of the load (not of
	// the final check) once its answer is read, from the goroutine of the
	// client that sent it: it must be safe for concurrent use, and quick.
	// Nil means none.
	Observe func(Observation)
}

// ReadPercentZero asks for writes only (ReadPercent's zero means 90).
const ReadPercentZero = -1

func (o Options) withDefaults() (Options, error) {
	if len(o.Targets) == 0 {
		return o, errors.New("loadgen: no target URL")
	}
	for i, t := range o.Targets {
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o, fmt.Errorf("loadgen: target %q: want an http:// or https:// URL", t)
		}
		o.Targets[i] = strings.TrimRight(t, "/")
	}
	if o.Duration <= 0 {
		o.Duration = 30 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if !(o.Rate >= 0) || math.IsInf(o.Rate, 1) {
		return o, fmt.Errorf("loadgen: rate %g: want a finite number of requests a second, 0 for no pacing", o.Rate)
	}
	if o.Users <= 0 {
		o.Users = 10_000
	}
	switch {
	case o.ReadPercent == ReadPercentZero:
		o.ReadPercent = 0
	case o.ReadPercent == 0:
		o.ReadPercent = 90
	case o.ReadPercent < 0 || o.ReadPercent > 100:
		return o, fmt.Errorf("loadgen: read percentage %d: want 0 to 100", o.ReadPercent)
	}
	if o.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 2 * o.Concurrency * len(o.Targets)
		tr.MaxIdleConnsPerHost = 2 * o.Concurrency
		tr.DisableCompression = true
		o.Client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	return o, nil
}

// Run drives the load for o.Duration (or until ctx ends), then re-reads
// every acknowledged write. The error is for a run that could not happen
// (bad options); what went wrong during the run is in the Report, and
// Report.Failed says whether it found a violation.
func Run(ctx context.Context, o Options) (*Report, error) {
	ownClient := o.Client == nil
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	seed := o.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	run := &runState{opts: o, started: time.Now(), runID: rand.Uint64()}
	run.pace = newPacer(o.Rate, run.started)
	loadCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()

	clients := make([]*client, o.Concurrency)
	for i := range clients {
		clients[i] = newClient(i, run, seed)
	}
	stopProgress := run.progress()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.loop(loadCtx) })
	}
	wg.Wait()
	elapsed := time.Since(run.started)
	stopProgress()

	rep := newReport(o, elapsed, clients)
	rep.Verify = verify(context.WithoutCancel(ctx), run, clients)
	if ownClient {
		o.Client.CloseIdleConnections() // a connection for every client: not left behind
	}
	return rep, nil
}

// runState is what the virtual clients share.
type runState struct {
	opts    Options
	started time.Time
	runID   uint64        // in every Idempotency-Key of the run, so that no two runs share a key
	pace    *pacer        // nil: no pacing
	next    atomic.Uint64 // round robin over the targets

	requests   atomic.Uint64
	errors     atomic.Uint64
	violations atomic.Uint64

	mu     sync.RWMutex
	users  []sharedUser      // every acknowledged user, in creation order
	emails map[string]string // email -> the user last acknowledged with it, until released
}

// releaseEmail records that user id is about to give email up: from now
// on another user may be acknowledged with it.
func (r *runState) releaseEmail(email, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.emails[email] == id {
		delete(r.emails, email)
	}
}

// giveEmail records that email went to user id, and returns the user it
// had gone to before, if any (a violation).
func (r *runState) giveEmail(email, id string) (before string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.emails == nil {
		r.emails = map[string]string{}
	}
	if prev, ok := r.emails[email]; ok && prev != id {
		return prev
	}
	r.emails[email] = id
	return ""
}

type sharedUser struct {
	id string
	at time.Time
}

func (r *runState) target() string {
	t := r.opts.Targets
	return t[r.next.Add(1)%uint64(len(t))]
}

func (r *runState) addUser(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users = append(r.users, sharedUser{id, time.Now()})
	return len(r.users)
}

func (r *runState) population() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users)
}

// someUser picks a user created at least settle ago, so that reads of
// other clients' users rarely race replication; "" when there is none.
func (r *runState) someUser(pick func(n int) int, settle time.Duration) string {
	cutoff := time.Now().Add(-settle)
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := sort.Search(len(r.users), func(i int) bool { return r.users[i].at.After(cutoff) })
	if n == 0 {
		return ""
	}
	return r.users[pick(n)].id
}
