package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// route indexes the API's routes in figures.
type route int

const (
	routeCreateUser route = iota
	routeGetUser
	routeUpdateUser
	routeCreatePost
	routeUserPosts
	routeRecent
	routeCreateUserEmail
	routeUserByEmail
	routeChangeEmail
	routeDeleteEmail
	numRoutes
)

var routeNames = [numRoutes]string{
	"POST /users", "GET /users/{id}", "PUT /users/{id}",
	"POST /users/{id}/posts", "GET /users/{id}/posts", "GET /posts/recent",
	"POST /users (email)", "GET /users?email=",
	"PUT /users/{id}/email", "DELETE /users/{id}/email",
}

// isError says whether an answer counts as an error; see IsError.
func isError(rt route, status int) bool { return IsError(routeNames[rt], status) }

// IsError says whether an answer to a request of the route (an
// Observation's Route) counts as an error: a transport error (status 0) or
// a 4xx/5xx, except the 409 that a create or an email change with a taken
// email expects.
func IsError(route string, status int) bool {
	if (route == routeNames[routeCreateUserEmail] || route == routeNames[routeChangeEmail]) && status == http.StatusConflict {
		return false
	}
	return status == 0 || status >= 400
}

// settle is how old another client's user must be before this one reads
// it: without the creator's token, a read may go to a replica that has not
// replayed the creation yet, which is allowed and not what is measured.
const settle = 2 * time.Second

// maxSamples is how many violation messages a client keeps.
const maxSamples = 5

// client is one virtual user of the API: one request at a time, carrying
// its own consistency token. Only the goroutine running loop uses it.
type client struct {
	id    int
	run   *runState
	rng   *rand.Rand
	token string
	own   []*ownedUser // users this client created; only it writes them
	seq   int

	latestPost int64 // newest acknowledged post of this client, 0 if none

	lat     [numRoutes][]time.Duration
	status  [numRoutes]map[int]int // 0 counts transport errors
	errBody map[int]string         // an example answer for each error status
	checks  int                    // reads checked against own writes
	stale   int                    // checked reads that missed an own write

	retries    int // POSTs sent again with their key, their outcome being unknown
	unresolved int // POSTs whose outcome was still unknown after the last retry
	samples    []string
}

// ownedUser is what a client knows of a user it created.
type ownedUser struct {
	id    string
	names []string // the names it may have: one after an acknowledged write, more after unacknowledged ones
	// emails are the emails it may have ("" for none), as names.
	emails []string
	final  string // its email at the final check ("" for none), set by verify
	// released are the last emails it gave up in acknowledged changes: at
	// the end, none may find it unless it has that email again.
	released []string
	posts    []int64 // acknowledged posts
	sent     int     // posts sent, acknowledged or not
	// refused are the marks of posts answered 5xx other than 504: the
	// server said nothing was committed, so none may appear.
	refused []string
}

func newClient(id int, run *runState, seed uint64) *client {
	c := &client{id: id, run: run, rng: rand.New(rand.NewPCG(seed, uint64(id))), errBody: map[int]string{}}
	for i := range c.status {
		c.status[i] = map[int]int{}
	}
	return c
}

func (c *client) loop(ctx context.Context) {
	// Requests run to completion even when the load ends mid-request, so
	// that every write has a known outcome.
	reqCtx := context.WithoutCancel(ctx)
	for c.run.pace.wait(ctx) {
		c.step(reqCtx)
	}
}

func (c *client) step(ctx context.Context) {
	o := c.run.opts
	if len(c.own) == 0 {
		c.createUser(ctx)
		return
	}
	if c.rng.IntN(100) < o.ReadPercent {
		switch n := c.rng.IntN(100); {
		case n < 5:
			c.getByEmail(ctx)
		case n < 55:
			c.getUser(ctx)
		case n < 85:
			c.userPosts(ctx)
		default:
			c.recent(ctx)
		}
		return
	}
	n := c.rng.IntN(100)
	if c.run.population() < o.Users {
		switch {
		case n < 40:
			c.createUser(ctx)
		case n < 85:
			c.createPost(ctx)
		case n < 95:
			c.rename(ctx)
		default:
			c.changeEmail(ctx)
		}
		return
	}
	switch {
	case n < 70:
		c.createPost(ctx)
	case n < 92:
		c.rename(ctx)
	default:
		c.changeEmail(ctx)
	}
}

// response is what a request brought back; status 0 is a transport error.
type response struct {
	status int
	body   []byte
	err    error
	// unknown: an earlier send of the same POST left its outcome unknown,
	// and no answer since has settled it (a 5xx to a retry says only that
	// the retry committed nothing).
	unknown bool
}

// maxRetries is how many times a POST whose outcome is unknown (a 504, or
// no answer at all) is sent again with its Idempotency-Key.
const maxRetries = 3

// post sends a POST with a fresh Idempotency-Key and, while its outcome is
// unknown, sends it again with the same key: the server then answers what
// it did the first time, and never makes a second row.
func (c *client) post(ctx context.Context, rt route, path string, body any) response {
	c.seq++
	key := fmt.Sprintf("lg-%x-%d-%d", c.run.runID, c.id, c.seq)
	r := c.do(ctx, rt, "POST", path, body, key)
	unknown := false
	for attempt := 1; attempt <= maxRetries && (outcomeUnknown(r) || unknown && r.status >= 500); attempt++ {
		unknown = true
		c.retries++
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		r = c.do(ctx, rt, "POST", path, body, key)
	}
	r.unknown = outcomeUnknown(r) || unknown && r.status >= 500
	if r.unknown {
		c.unresolved++
	}
	return r
}

// outcomeUnknown says whether an answer leaves a write's outcome unknown.
func outcomeUnknown(r response) bool {
	return r.status == 0 || r.status == http.StatusGatewayTimeout
}

func (c *client) do(ctx context.Context, rt route, method, path string, body any, idempotencyKey ...string) response {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	target := c.run.target()
	req, err := http.NewRequestWithContext(ctx, method, target+path, rd)
	if err != nil {
		return response{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-Consistency-Token", c.token)
	}
	for _, k := range idempotencyKey {
		req.Header.Set("Idempotency-Key", k)
	}
	start := time.Now()
	res, err := c.run.opts.Client.Do(req)
	var r response
	var hdr http.Header
	if err == nil {
		hdr = res.Header
		r.body, err = io.ReadAll(res.Body)
		res.Body.Close()
		r.status = res.StatusCode
		if tok := res.Header.Get("X-Consistency-Token"); tok != "" && res.StatusCode < 300 {
			c.token = tok
		}
	}
	r.err = err
	if err != nil {
		r.status = 0
	}
	lat := time.Since(start)
	c.lat[rt] = append(c.lat[rt], lat)
	c.observe(rt, req, target, start, lat, hdr, r)
	c.status[rt][r.status]++
	if isError(rt, r.status) {
		if _, ok := c.errBody[r.status]; !ok {
			if r.err != nil {
				c.errBody[r.status] = r.err.Error()
			} else {
				c.errBody[r.status] = strings.TrimSpace(string(r.body))
			}
		}
	}
	c.run.requests.Add(1)
	if isError(rt, r.status) {
		c.run.errors.Add(1)
	}
	return r
}

func (c *client) violation(format string, args ...any) {
	c.stale++
	c.run.violations.Add(1)
	if len(c.samples) < maxSamples {
		c.samples = append(c.samples, fmt.Sprintf("client %d: ", c.id)+fmt.Sprintf(format, args...))
	}
}

func (c *client) pickOwn() *ownedUser { return c.own[c.rng.IntN(len(c.own))] }

// names: ASCII and not, short and long, so that UTF-8 travels every path.
var nameParts = []string{"Ada", "Grace", "Zoë", "Jürgen", "李雷", "Ольга", "Ngozi", "José", "Aiko", "O'Brien"}

func (c *client) newName() string {
	c.seq++
	return fmt.Sprintf("%s %d-%d", nameParts[c.rng.IntN(len(nameParts))], c.id, c.seq)
}

// newBody is a post's text, ending in a mark that no other post of the
// run has, so that the final check can tell a duplicated post.
func (c *client) newBody() string {
	n := 20 + c.rng.IntN(280)
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(nameParts[c.rng.IntN(len(nameParts))])
		b.WriteByte(' ')
	}
	c.seq++
	fmt.Fprintf(&b, "%s%d-%d", markPrefix, c.id, c.seq)
	return b.String()
}

// markPrefix starts the mark that ends every post's body.
const markPrefix = "#lg"

// postMark returns the mark of a post's body, "" if it has none.
func postMark(body string) string {
	i := strings.LastIndex(body, markPrefix)
	if i < 0 {
		return ""
	}
	return body[i:]
}

type userDoc struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

type postDoc struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Body   string `json:"body"`
}

type postsDoc struct {
	Posts []postDoc `json:"posts"`
}

// createUser makes a user, half the time with an email drawn from a pool
// half the population's size, so that many are taken already: a create
// with a taken email must answer 409, and no email may go to two users.
func (c *client) createUser(ctx context.Context) {
	name := c.newName()
	rt, body := routeCreateUser, map[string]string{"name": name}
	email := ""
	if c.rng.IntN(2) == 0 {
		email = c.poolEmail()
		rt, body["email"] = routeCreateUserEmail, email
	}
	r := c.post(ctx, rt, "/users", body)
	if r.status != http.StatusCreated {
		return // not acknowledged (or the email was taken): nothing to expect of it
	}
	var u userDoc
	if err := json.Unmarshal(r.body, &u); err != nil || u.ID == "" || u.Name != name || u.Email != email {
		c.violation("POST /users answered 201 with %.200q", r.body)
		return
	}
	if email != "" {
		if other := c.run.giveEmail(email, u.ID); other != "" {
			c.violation("POST /users: email %s given to user %s, and before to user %s", email, u.ID, other)
		}
	}
	c.own = append(c.own, &ownedUser{id: u.ID, emails: []string{email}, names: []string{name}})
	c.run.addUser(u.ID)
}

// poolEmail draws an email from a pool half the population's size.
func (c *client) poolEmail() string {
	return fmt.Sprintf("u%d.%x@example.com", c.rng.IntN(max(c.run.opts.Users/2, 1)), c.run.runID)
}

// changeEmail gives one of its users another email from the pool (409 if
// taken) or, a third of the time, deletes its email.
func (c *client) changeEmail(ctx context.Context) {
	u := c.pickOwn()
	sure := len(u.emails) == 1
	old := u.emails[0]
	email := ""
	var r response
	path := "/users/" + u.id + "/email"
	if sure && old != "" {
		// From here another user may take it, whatever this change's outcome.
		c.run.releaseEmail(old, u.id)
	}
	if old != "" && c.rng.IntN(3) == 0 {
		r = c.do(ctx, routeDeleteEmail, "DELETE", path, nil)
	} else {
		email = c.poolEmail()
		r = c.do(ctx, routeChangeEmail, "PUT", path, map[string]string{"email": email})
	}
	switch r.status {
	case http.StatusOK:
		var got userDoc
		if err := json.Unmarshal(r.body, &got); err != nil || got.ID != u.id || got.Email != email {
			c.violation("%s answered 200 with %.200q, want email %q", path, r.body, email)
		}
		u.emails = []string{email}
		if sure && old != "" && old != email {
			u.released = append(u.released[max(len(u.released)-2, 0):], old)
		}
		if email != "" {
			if other := c.run.giveEmail(email, u.id); other != "" {
				c.violation("%s: email %s given to user %s, and before to user %s", path, email, u.id, other)
			}
		}
	case http.StatusConflict, http.StatusBadRequest:
		// Nothing changed: the user still has its email, and no one else
		// could have taken it meanwhile.
		if sure && old != "" {
			if other := c.run.giveEmail(old, u.id); other != "" {
				c.violation("%s: refused, and its email %s went to user %s meanwhile", path, old, other)
			}
		}
	case http.StatusNotFound:
		c.violation("%s: 404 for a user whose creation was acknowledged", path)
	default:
		u.emails = append(u.emails, email) // it may or may not have happened
	}
}

// getByEmail finds one of its own users by email, with its token: the
// answer must be that user.
func (c *client) getByEmail(ctx context.Context) {
	var withEmail []*ownedUser
	for _, u := range c.own {
		if len(u.emails) == 1 && u.emails[0] != "" {
			withEmail = append(withEmail, u)
		}
	}
	if len(withEmail) == 0 {
		c.getUser(ctx)
		return
	}
	u := withEmail[c.rng.IntN(len(withEmail))]
	email := u.emails[0]
	r := c.do(ctx, routeUserByEmail, "GET", "/users?email="+url.QueryEscape(email), nil)
	if c.checkUser(u, r, "GET by email") {
		var got userDoc
		if json.Unmarshal(r.body, &got) == nil && got.ID != u.id {
			c.violation("GET /users?email=%s: user %s, want %s", email, got.ID, u.id)
		}
	}
}

func (c *client) rename(ctx context.Context) {
	u := c.pickOwn()
	name := c.newName()
	r := c.do(ctx, routeUpdateUser, "PUT", "/users/"+u.id, map[string]string{"name": name})
	switch r.status {
	case http.StatusOK:
		u.names = []string{name}
	case http.StatusNotFound:
		c.violation("PUT /users/%s: 404 for a user whose creation was acknowledged", u.id)
	default:
		u.names = append(u.names, name) // it may or may not have happened
	}
}

func (c *client) createPost(ctx context.Context) {
	u := c.pickOwn()
	u.sent++
	body := c.newBody()
	r := c.post(ctx, routeCreatePost, "/users/"+u.id+"/posts", map[string]string{"body": body})
	if r.status >= 500 && !r.unknown {
		u.refused = append(u.refused, postMark(body))
	}
	switch r.status {
	case http.StatusCreated:
		var p postDoc
		var id int64
		err := json.Unmarshal(r.body, &p)
		if err == nil {
			id, err = strconv.ParseInt(p.ID, 10, 64)
		}
		if err != nil || p.UserID != u.id {
			c.violation("POST /users/%s/posts answered 201 with %.200q", u.id, r.body)
			return
		}
		u.posts = append(u.posts, id)
		c.latestPost = max(c.latestPost, id)
	case http.StatusNotFound:
		c.violation("POST /users/%s/posts: 404 for a user whose creation was acknowledged", u.id)
	}
}

// getUser reads one of its own users (and checks it) or, half the time,
// someone else's.
func (c *client) getUser(ctx context.Context) {
	if c.rng.IntN(2) == 0 {
		if id := c.run.someUser(c.rng.IntN, settle); id != "" {
			c.do(ctx, routeGetUser, "GET", "/users/"+id, nil)
			return
		}
	}
	u := c.pickOwn()
	r := c.do(ctx, routeGetUser, "GET", "/users/"+u.id, nil)
	c.checkUser(u, r, "GET")
}

// checkUser checks a read of an own user against the acknowledged writes.
func (c *client) checkUser(u *ownedUser, r response, what string) bool {
	switch r.status {
	case http.StatusOK:
	case http.StatusNotFound:
		c.checks++
		c.violation("%s /users/%s: 404 after its creation was acknowledged", what, u.id)
		return false
	default:
		return false // an error, counted as such, not a consistency verdict
	}
	c.checks++
	var got userDoc
	if err := json.Unmarshal(r.body, &got); err != nil {
		c.violation("%s /users/%s: unreadable body %.200q", what, u.id, r.body)
		return false
	}
	i := slices.Index(u.names, got.Name)
	if i < 0 {
		c.violation("%s /users/%s: name %q, want %q (the last acknowledged write)", what, u.id, got.Name, u.names[0])
		return false
	}
	if i == len(u.names)-1 {
		u.names = u.names[i:] // the newest possible write is visible: it happened
	}
	return true
}

func (c *client) userPosts(ctx context.Context) {
	u := c.pickOwn()
	r := c.do(ctx, routeUserPosts, "GET", "/users/"+u.id+"/posts", nil)
	if r.status != http.StatusOK || len(u.posts) == 0 {
		return
	}
	c.checks++
	var got postsDoc
	if err := json.Unmarshal(r.body, &got); err != nil {
		c.violation("GET /users/%s/posts: unreadable body %.200q", u.id, r.body)
		return
	}
	want := strconv.FormatInt(u.posts[len(u.posts)-1], 10)
	if !slices.ContainsFunc(got.Posts, func(p postDoc) bool { return p.ID == want }) {
		c.violation("GET /users/%s/posts: the newest acknowledged post %s is missing (%d posts listed)", u.id, want, len(got.Posts))
	}
}

// recent checks the global feed: the client's newest post belongs in it
// unless the feed is full of newer posts.
func (c *client) recent(ctx context.Context) {
	const limit = 20
	r := c.do(ctx, routeRecent, "GET", "/posts/recent?limit="+strconv.Itoa(limit), nil)
	if r.status != http.StatusOK || c.latestPost == 0 {
		return
	}
	var got postsDoc
	if err := json.Unmarshal(r.body, &got); err != nil {
		c.checks++
		c.violation("GET /posts/recent: unreadable body %.200q", r.body)
		return
	}
	oldest := int64(1<<63 - 1)
	found := false
	for _, p := range got.Posts {
		id, _ := strconv.ParseInt(p.ID, 10, 64)
		oldest = min(oldest, id)
		found = found || id == c.latestPost
	}
	if len(got.Posts) < limit || c.latestPost >= oldest {
		c.checks++
		if !found {
			c.violation("GET /posts/recent: own post %d belongs in the newest %d but is missing", c.latestPost, limit)
		}
	}
}
