package e2e

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgshard/pgshard/internal/loadgen"
	"github.com/pgshard/pgshard/shard"
)

// chaosObs is one answer a client got, reduced to what the chaos suite
// asks of it.
type chaosObs struct {
	src      string // "load", "bystander", or a scenario's own client
	route    string // the route's pattern
	write    bool
	shard    string // the shard the request needed; "*" for all; "" unknown
	start    time.Time
	end      time.Time
	status   int // 0: transport error
	servedBy string
	body     string // the start of an error's body
}

// failed says whether the answer is an error of the server or the
// transport, as opposed to a valid answer (2xx, 404 and other 4xx).
func (o *chaosObs) failed() bool { return o.status == 0 || o.status >= 500 }

// isError counts as loadgen does: transport errors and every 4xx or 5xx,
// but the 409 to a create or an email change with an email already taken,
// which loadgen expects (it draws emails from a pool half the population's
// size).
func (o *chaosObs) isError() bool { return loadgen.IsError(o.route, o.status) }

func (o *chaosObs) ok() bool { return o.status >= 200 && o.status < 300 }

// chaosTimeline holds every answer of a scenario, in arrival order. It is
// safe for concurrent use.
type chaosTimeline struct {
	shards *shard.Map

	mu    sync.Mutex
	obs   []chaosObs
	users []int64 // created users, for bystanders to read
}

func newChaosTimeline(m *shard.Map) *chaosTimeline { return &chaosTimeline{shards: m} }

// observer returns a loadgen.Options.Observe that records into tl.
func (tl *chaosTimeline) observer(src string) func(loadgen.Observation) {
	return func(o loadgen.Observation) { tl.add(src, o) }
}

func (tl *chaosTimeline) add(src string, o loadgen.Observation) {
	c := chaosObs{src: src, route: o.Route, write: o.Method != http.MethodGet, start: o.Start,
		end: o.Start.Add(o.Latency), status: o.Status, shard: tl.shardOf(o)}
	if o.Header != nil {
		c.servedBy = o.Header.Get("X-Served-By")
	}
	if c.isError() {
		c.body = errorText(o.Body, o.Err)
	}
	var created int64
	if (o.Route == "POST /users" || o.Route == "POST /users (email)") && o.Status == http.StatusCreated {
		created, _ = idIn(o.Header.Get("Location"))
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.obs = append(tl.obs, c)
	if created != 0 {
		tl.users = append(tl.users, created)
	}
}

// errorText is the message of an error answer: its {"error"}, else its
// body, or the transport error; at most 300 bytes.
func errorText(body []byte, err error) string {
	msg := strings.TrimSpace(string(body))
	var e struct {
		Error string `json:"error"`
	}
	switch {
	case err != nil:
		msg = err.Error()
	case json.Unmarshal(body, &e) == nil && e.Error != "":
		msg = e.Error
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

// shardInError finds the shard that a 503 names ("shard shard0: ...").
var shardInError = regexp.MustCompile(`shard (shard[0-9]+)`)

// shardOf says which shard a request needed: by the user ID in its path or
// in the Location of a created user, else by the shard its error names.
func (tl *chaosTimeline) shardOf(o loadgen.Observation) string {
	if strings.HasPrefix(o.Path, "/posts/recent") {
		return "*"
	}
	if strings.HasSuffix(o.Path, "/email") {
		// The user's shard, and those of its old and new emails' lookup
		// rows: any of them.
		return "*"
	}
	if id, ok := idIn(o.Path); ok {
		return tl.userShard(id)
	}
	if o.Header != nil {
		if id, ok := idIn(o.Header.Get("Location")); ok {
			return tl.userShard(id)
		}
	}
	if m := shardInError.FindSubmatch(o.Body); m != nil {
		return string(m[1])
	}
	return ""
}

// userShard returns the shard of a user.
func (tl *chaosTimeline) userShard(id int64) string { return tl.shards.Lookup(shard.HashInt64(id)) }

// idIn reads the user ID of /users/{id}...
func idIn(path string) (int64, bool) {
	rest, ok := strings.CutPrefix(path, "/users/")
	if !ok {
		return 0, false
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil
}

// all returns the answers that satisfy keep.
func (tl *chaosTimeline) all(keep func(*chaosObs) bool) []chaosObs {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []chaosObs
	for i := range tl.obs {
		if keep == nil || keep(&tl.obs[i]) {
			out = append(out, tl.obs[i])
		}
	}
	return out
}

// firstEnd returns the earliest answer, by the time it arrived, that
// satisfies keep.
func (tl *chaosTimeline) firstEnd(keep func(*chaosObs) bool) (chaosObs, bool) {
	var best chaosObs
	found := false
	for _, o := range tl.all(keep) {
		if !found || o.end.Before(best.end) {
			best, found = o, true
		}
	}
	return best, found
}

// someUser returns a user created during the scenario.
func (tl *chaosTimeline) someUser(rng *rand.Rand) (int64, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.users) == 0 {
		return 0, false
	}
	return tl.users[rng.IntN(len(tl.users))], true
}

// errorsByStatus counts the errors among obs by status (0: transport).
func errorsByStatus(obs []chaosObs) map[int]int {
	m := map[int]int{}
	for _, o := range obs {
		if o.isError() {
			m[o.status]++
		}
	}
	return m
}

func countObs(obs []chaosObs, keep func(*chaosObs) bool) int {
	n := 0
	for i := range obs {
		if keep(&obs[i]) {
			n++
		}
	}
	return n
}

func filterObs(obs []chaosObs, keep func(*chaosObs) bool) []chaosObs {
	var out []chaosObs
	for i := range obs {
		if keep(&obs[i]) {
			out = append(out, obs[i])
		}
	}
	return out
}

func maxLatency(obs []chaosObs) time.Duration {
	var m time.Duration
	for _, o := range obs {
		m = max(m, o.end.Sub(o.start))
	}
	return m
}

// sentIn keeps answers to requests sent in [from, to).
func sentIn(from, to time.Time) func(*chaosObs) bool {
	return func(o *chaosObs) bool { return !o.start.Before(from) && o.start.Before(to) }
}

// allOf combines filters.
func allOf(fs ...func(*chaosObs) bool) func(*chaosObs) bool {
	return func(o *chaosObs) bool {
		for _, f := range fs {
			if !f(o) {
				return false
			}
		}
		return true
	}
}

func toShard(name string) func(*chaosObs) bool {
	return func(o *chaosObs) bool { return o.shard == name }
}

func obsWrite(o *chaosObs) bool { return o.write }
func obsRead(o *chaosObs) bool  { return !o.write }
