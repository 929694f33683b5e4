package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// VerifyResult is the final check: every acknowledged write, read back.
type VerifyResult struct {
	Users      int // users re-read
	Posts      int // acknowledged posts looked for
	Lost       int // acknowledged writes missing or overwritten
	Duplicates int // posts made twice: a write retried with its Idempotency-Key must be made once
	// Phantoms are posts answered 5xx other than 504 (nothing committed,
	// the server said) that exist all the same.
	Phantoms   int
	Unverified int      // users whose reads kept failing, so could not be checked
	Samples    []string // the first few problems
	Elapsed    time.Duration
}

// verify re-reads every user each client created, with that client's
// token, and checks its name and that each acknowledged post is listed.
func verify(ctx context.Context, run *runState, clients []*client) VerifyResult {
	start := time.Now()
	type item struct {
		c *client
		u *ownedUser
	}
	items := make(chan item)
	var (
		mu  sync.Mutex
		res VerifyResult
		wg  sync.WaitGroup
	)
	note := func(lost, unverified, dups, phantoms int, msg string) {
		mu.Lock()
		defer mu.Unlock()
		res.Lost += lost
		res.Unverified += unverified
		res.Duplicates += dups
		res.Phantoms += phantoms
		if msg != "" && len(res.Samples) < 10 {
			res.Samples = append(res.Samples, msg)
		}
	}
	for range run.opts.Concurrency {
		wg.Go(func() {
			for it := range items {
				v := verifyUser(ctx, run, it.c.token, it.u)
				note(v.lost, v.unverified, v.dups, v.phantoms, v.msg)
			}
		})
	}
	for _, c := range clients {
		for _, u := range c.own {
			res.Users++
			res.Posts += len(u.posts)
			items <- item{c, u}
		}
	}
	close(items)
	wg.Wait()
	// Exactly one user per email: no two users end with the same one.
	holders := map[string][]string{}
	for _, c := range clients {
		for _, u := range c.own {
			if u.final != "" {
				holders[u.final] = append(holders[u.final], u.id)
			}
		}
	}
	for email, ids := range holders {
		if len(ids) > 1 {
			note(len(ids)-1, 0, 0, 0, fmt.Sprintf("email %s: held by %d users at the end (%v)", email, len(ids), ids))
		}
	}
	res.Elapsed = time.Since(start)
	return res
}

// userCheck is what the final check found of one user.
type userCheck struct {
	lost, unverified, dups, phantoms int
	msg                              string // the first problem
}

// verifyUser re-reads one user and its posts: the acknowledged writes
// lost, whether it could not be read, the posts made twice, the posts
// refused that exist anyway, and a message on the first problem.
func verifyUser(ctx context.Context, run *runState, token string, u *ownedUser) userCheck {
	lost, unverified, dups, phantoms, msg := verifyUser1(ctx, run, token, u)
	return userCheck{lost, unverified, dups, phantoms, msg}
}

func verifyUser1(ctx context.Context, run *runState, token string, u *ownedUser) (lost, unverified, dups, phantoms int, msg string) {
	status, body, err := get(ctx, run, token, "/users/"+u.id)
	switch {
	case err != nil || (status != http.StatusOK && status != http.StatusNotFound):
		return 0, 1, 0, 0, fmt.Sprintf("user %s: cannot read it back: %s", u.id, problem(status, body, err))
	case status == http.StatusNotFound:
		return 1 + len(u.posts), 0, 0, 0, fmt.Sprintf("user %s: acknowledged creation, missing at the end", u.id)
	}
	var got userDoc
	if json.Unmarshal(body, &got) != nil || !slices.Contains(u.names, got.Name) {
		lost++
		msg = fmt.Sprintf("user %s: name %q at the end, want %q (the last acknowledged write)", u.id, got.Name, u.names[0])
	}
	if !slices.Contains(u.emails, got.Email) {
		lost++
		if msg == "" {
			msg = fmt.Sprintf("user %s: email %q at the end, want %q (the last acknowledged write)", u.id, got.Email, u.emails[0])
		}
	}
	if got.Email != "" {
		// Each email maps to exactly one live user: this one (verify checks
		// that no other user has it).
		status, body, err := get(ctx, run, token, "/users?email="+url.QueryEscape(got.Email))
		var byEmail userDoc
		switch {
		case err != nil || (status != http.StatusOK && status != http.StatusNotFound):
			return lost, 1, 0, 0, fmt.Sprintf("user %s: cannot look up its email %s: %s", u.id, got.Email, problem(status, body, err))
		case status == http.StatusNotFound || json.Unmarshal(body, &byEmail) != nil || byEmail.ID != u.id:
			lost++
			if msg == "" {
				msg = fmt.Sprintf("email %s: answered %d %.100q, want user %s", got.Email, status, body, u.id)
			}
		}
		u.final = got.Email
	}
	for _, e := range u.released {
		if e == got.Email {
			continue
		}
		status, body, err := get(ctx, run, token, "/users?email="+url.QueryEscape(e))
		var byEmail userDoc
		if err == nil && status == http.StatusOK && json.Unmarshal(body, &byEmail) == nil && byEmail.ID == u.id {
			lost++
			if msg == "" {
				msg = fmt.Sprintf("email %s: still finds user %s, which gave it up", e, u.id)
			}
		}
	}
	if u.sent == 0 {
		return lost, 0, 0, 0, msg
	}
	seen := map[int64]bool{}
	marks := map[string]int{}
	before := ""
	for {
		path := "/users/" + u.id + "/posts?limit=100" + before
		status, body, err := get(ctx, run, token, path)
		if err != nil || status != http.StatusOK {
			return lost, 1, 0, 0, fmt.Sprintf("user %s: cannot list its posts: %s", u.id, problem(status, body, err))
		}
		var page postsDoc
		if err := json.Unmarshal(body, &page); err != nil {
			return lost, 1, 0, 0, fmt.Sprintf("user %s: unreadable posts page %.100q", u.id, body)
		}
		for _, p := range page.Posts {
			id, _ := strconv.ParseInt(p.ID, 10, 64)
			seen[id] = true
			if m := postMark(p.Body); m != "" {
				marks[m]++
			}
		}
		if len(page.Posts) < 100 {
			break
		}
		before = "&before=" + page.Posts[len(page.Posts)-1].ID
	}
	for _, id := range u.posts {
		if !seen[id] {
			lost++
			if msg == "" {
				msg = fmt.Sprintf("user %s: acknowledged post %d missing at the end", u.id, id)
			}
		}
	}
	for m, n := range marks {
		if n > 1 {
			dups += n - 1
			if msg == "" {
				msg = fmt.Sprintf("user %s: post %q made %d times", u.id, m, n)
			}
		}
	}
	for _, m := range u.refused {
		if marks[m] > 0 {
			phantoms++
			if msg == "" {
				msg = fmt.Sprintf("user %s: post %q was answered 5xx (nothing committed) but exists", u.id, m)
			}
		}
	}
	return lost, 0, dups, phantoms, msg
}

// get reads a path, trying again on errors that may pass (transport, 429,
// 5xx) a few times.
func get(ctx context.Context, run *runState, token, path string) (int, []byte, error) {
	var (
		status int
		body   []byte
		err    error
	)
	for attempt := range 4 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		status, body, err = get1(ctx, run, token, path)
		if err == nil && status != http.StatusTooManyRequests && status < 500 {
			break
		}
	}
	return status, body, err
}

func get1(ctx context.Context, run *runState, token, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", run.target()+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("X-Consistency-Token", token)
	}
	res, err := run.opts.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

func problem(status int, body []byte, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("HTTP %d %.100s", status, body)
}
