package e2e

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The workload of scenario 5: instance A renames a few users over and
// over; instance B reads them without a token, mostly from its cache; each
// of B's reads is judged against the versions A had acknowledged.

// notifySlack is how long after a write's acknowledgement another
// instance's cache may still show the old value: the notification is on
// its way (the project's cross-instance figure; examples/server/app's
// TestSecondInstanceSeesRenameWithoutToken logs it).
const notifySlack = 100 * time.Millisecond

// renamed is what the writer knows of one user: the versions of its name
// ("v<n>") that were acknowledged, and when. It is safe for concurrent use.
type renamed struct {
	id    int64
	shard string

	mu    sync.Mutex
	acked []ackedVersion // ascending
}

type ackedVersion struct {
	v  int
	at time.Time
}

// newestBefore returns the newest version acknowledged before t; -1 if none.
func (u *renamed) newestBefore(t time.Time) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	v := -1
	for _, a := range u.acked {
		if a.at.Before(t) {
			v = a.v
		}
	}
	return v
}

// versionRead is a read of a renamed user on instance B.
type versionRead struct {
	start    time.Time
	shard    string
	servedBy string
	seen     int // version seen; -1 for a 404
	want     int // the newest version it must at least show
}

func (r versionRead) stale() bool { return r.seen < r.want }

// renameWorkload is scenario 5's writer and readers.
type renameWorkload struct {
	e     *chaosEnv
	users []*renamed
	done  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	reads []versionRead
}

// startRenames creates n users on a, has b cache each (reading it with
// a's token), then starts a renaming them one after another and readers
// reading them on b, until stop.
func (e *chaosEnv) startRenames(t *testing.T, a, b *chaosInstance, n, readers int) *renameWorkload {
	w := &renameWorkload{e: e, done: make(chan struct{})}
	c := e.client("writer")
	deadline := time.Now().Add(20 * time.Second) // tolerates a busy machine's 503s
	for len(w.users) < n {
		st, hdr, body := c.send(a, "POST", "POST /users", "/users", map[string]string{"name": "v0"})
		id, ok := idIn(hdr.Get("Location"))
		if st != http.StatusCreated || !ok {
			if time.Now().After(deadline) {
				t.Fatalf("create a user on A: %d %s", st, body)
			}
			continue
		}
		w.users = append(w.users, &renamed{id: id, shard: e.tl.userShard(id), acked: []ackedVersion{{0, time.Now()}}})
		for {
			st, _, body := c.sendToken(b, "GET", "GET /users/{id}", userPath(id), nil, hdr.Get("X-Consistency-Token"))
			if st == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("read the user on B: %d %s", st, body)
			}
		}
	}
	w.wg.Go(func() { w.rename(a, c) })
	rd := e.client("reader")
	for i := range readers {
		w.wg.Go(func() { w.read(b, rd, uint64(i)) })
	}
	return w
}

// stop ends the writer and the readers and returns the reads.
func (w *renameWorkload) stop() []versionRead {
	close(w.done)
	w.wg.Wait()
	return w.reads
}

func (w *renameWorkload) rename(a *chaosInstance, c *chaosClient) {
	for seq := 1; ; seq++ {
		select {
		case <-w.done:
			return
		case <-time.After(2 * time.Millisecond):
		}
		u := w.users[seq%len(w.users)]
		st, _, _ := c.send(a, "PUT", "PUT /users/{id}", userPath(u.id), map[string]string{"name": "v" + strconv.Itoa(seq)})
		if st == http.StatusOK {
			u.mu.Lock()
			u.acked = append(u.acked, ackedVersion{seq, time.Now()})
			u.mu.Unlock()
		}
	}
}

// read reads random users on b without a token. A read from the cache must
// show what A had acknowledged notifySlack before it was sent; one from a
// replica may be MaxLag older.
func (w *renameWorkload) read(b *chaosInstance, c *chaosClient, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	for {
		select {
		case <-w.done:
			return
		case <-time.After(time.Millisecond):
		}
		u := w.users[rng.IntN(len(w.users))]
		start := time.Now()
		st, hdr, body := c.send(b, "GET", "GET /users/{id}", userPath(u.id), nil)
		seen := -1
		switch st {
		case http.StatusOK:
			name, _ := nameIn(body)
			v, err := strconv.Atoi(strings.TrimPrefix(name, "v"))
			if err != nil {
				continue
			}
			seen = v
		case http.StatusNotFound:
		default:
			continue // an error, counted as such
		}
		by := hdr.Get("X-Served-By")
		slack := notifySlack
		if by != "cache" {
			slack += chaosMaxLag
		}
		r := versionRead{start: start, shard: u.shard, servedBy: by, seen: seen, want: u.newestBefore(start.Add(-slack))}
		w.mu.Lock()
		w.reads = append(w.reads, r)
		w.mu.Unlock()
	}
}

func userPath(id int64) string { return "/users/" + strconv.FormatInt(id, 10) }
