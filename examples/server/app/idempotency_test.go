package app

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// countPosts counts a user's posts with a body on the user's shard primary.
func countPosts(t *testing.T, in *instance, uid, body string) int {
	t.Helper()
	id, err := strconv.ParseInt(uid, 10, 64)
	require.NoError(t, err)
	n := 0
	require.NoError(t, in.r.User(id).Tx(context.Background(), func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM posts WHERE user_id = $1 AND body = $2", id, body).Scan(&n)
	}))
	return n
}

// countUsers counts the users named name on every shard's primary.
func countUsersNamed(t *testing.T, in *instance, name string) int {
	t.Helper()
	total := 0
	for _, sh := range in.r.Shards() {
		n := 0
		require.NoError(t, sh.Tx(context.Background(), func(tx pgx.Tx) error {
			return tx.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE name = $1", name).Scan(&n)
		}))
		total += n
	}
	return total
}

func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	in := start(t, nil, Options{NodeID: 11})

	// A user: the retry gets the same user, and there is one row.
	name := "idem-user-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	first := in.do("POST", "/users", map[string]string{"name": name}, IdempotencyHeader, "k-user-"+name)
	want(t, "first POST /users", first, http.StatusCreated)
	assert.Empty(t, first.header.Get("Idempotent-Replayed"), "a first answer is not a replay")
	again := in.do("POST", "/users", map[string]string{"name": name}, IdempotencyHeader, "k-user-"+name)
	want(t, "retried POST /users", again, http.StatusCreated)
	assert.Equal(t, string(first.body), string(again.body), "the retry's answer")
	assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	assert.NotEmpty(t, again.header.Get("X-Consistency-Token"), "a replay carries a token")
	assert.Equal(t, 1, countUsersNamed(t, in, name), "users named %q", name)
	var u userOut
	first.json(t, &u)
	// The user lives on the shard its answer names, and can be read there.
	got := in.do("GET", "/users/"+u.ID, nil, "X-Consistency-Token", again.header.Get("X-Consistency-Token"))
	want(t, "GET the user", got, http.StatusOK)

	// A post: the same.
	body := "hello once " + name
	p1 := in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": body}, IdempotencyHeader, "k-post-"+name)
	want(t, "first POST posts", p1, http.StatusCreated)
	p2 := in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": body}, IdempotencyHeader, "k-post-"+name)
	want(t, "retried POST posts", p2, http.StatusCreated)
	assert.Equal(t, string(p1.body), string(p2.body), "the retry's answer")
	assert.Equal(t, 1, countPosts(t, in, u.ID, body), "posts with the body")

	// The same key on another route, or another user, is another request.
	p3 := in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": body}, IdempotencyHeader, "k-user-"+name)
	want(t, "POST posts with the user's key", p3, http.StatusCreated)
	assert.Equal(t, 2, countPosts(t, in, u.ID, body), "posts with the body")

	// Without a key, every POST is a new row.
	for range 2 {
		want(t, "POST posts without a key", in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": body}), http.StatusCreated)
	}
	assert.Equal(t, 4, countPosts(t, in, u.ID, body), "posts with the body")
}

func TestIdempotencyKeyReusedForAnotherRequestIs422(t *testing.T) {
	in := start(t, nil, Options{NodeID: 12})
	u, _ := in.createUser("idem-422")
	key := "k-422-" + u.ID
	want(t, "first", in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": "one"}, IdempotencyHeader, key), http.StatusCreated)
	r := in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": "two"}, IdempotencyHeader, key)
	want(t, "same key, another body", r, http.StatusUnprocessableEntity)
	assert.Contains(t, r.errorText(t), "Idempotency-Key: this key was used for another request")
	assert.Equal(t, 0, countPosts(t, in, u.ID, "two"), "posts of the refused request")
}

// Concurrent retries of one request, as a client whose first attempt timed
// out might send: one row, one answer for all.
func TestIdempotencyKeyConcurrentRetries(t *testing.T) {
	in := start(t, nil, Options{NodeID: 13})
	u, _ := in.createUser("idem-concurrent")
	const n = 8
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": "racing"}, IdempotencyHeader, "k-race-"+u.ID)
			assert.Equal(t, http.StatusCreated, r.status, "attempt %d: %s", i, r.body)
			bodies[i] = string(r.body)
		})
	}
	wg.Wait()
	for i := range bodies {
		assert.Equal(t, bodies[0], bodies[i], "answer %d", i)
	}
	assert.Equal(t, 1, countPosts(t, in, u.ID, "racing"), "rows")
}

func TestIdempotencyKeyRefusedWhenMalformed(t *testing.T) {
	in := start(t, nil, Options{NodeID: 14})
	u, _ := in.createUser("idem-bad-owner")
	for _, tc := range []struct {
		name, key, want string
	}{
		{"empty", "", "want 1 to 255 characters, got 0"},
		{"too long", strings.Repeat("k", 256), "want 1 to 255 characters, got 256"},
		{"space", "a b", `byte 1 is ' '`},
		{"non-ASCII", "clé", "want printable ASCII"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, req := range []struct {
				path string
				body map[string]string
			}{
				{"/users", map[string]string{"name": "idem-bad"}},
				{"/users/" + u.ID + "/posts", map[string]string{"body": "idem-bad"}},
			} {
				r := in.do("POST", req.path, req.body, IdempotencyHeader, tc.key)
				want(t, "POST "+req.path, r, http.StatusBadRequest)
				msg := r.errorText(t)
				assert.Contains(t, msg, "Idempotency-Key: ")
				assert.Contains(t, msg, tc.want)
			}
		})
	}
	assert.Equal(t, 0, countPosts(t, in, u.ID, "idem-bad"), "posts of refused requests")
	assert.Equal(t, 0, countUsersNamed(t, in, "idem-bad"), "users of refused requests")
}

func TestIdempotencyKeysExpire(t *testing.T) {
	in := start(t, nil, Options{NodeID: 15})
	u, _ := in.createUser("idem-expire")
	key := "k-expire-" + u.ID
	post := func() result {
		return in.do("POST", "/users/"+u.ID+"/posts", map[string]string{"body": "expiring"}, IdempotencyHeader, key)
	}
	want(t, "first", post(), http.StatusCreated)
	want(t, "retry", post(), http.StatusCreated)
	require.Equal(t, 1, countPosts(t, in, u.ID, "expiring"))

	// Age the key past a TTL of an hour, as if a day had gone by.
	uid, _ := strconv.ParseInt(u.ID, 10, 64)
	_, err := in.r.User(uid).Exec(context.Background(),
		`UPDATE idempotency_keys SET created_at = now() - interval '2 hours' WHERE key = $1`, key)
	require.NoError(t, err)
	n, err := expireIdempotencyKeys(context.Background(), in.r, time.Hour)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, int64(1), "keys deleted")

	want(t, "after expiry", post(), http.StatusCreated)
	assert.Equal(t, 2, countPosts(t, in, u.ID, "expiring"), "an expired key is a new request")
}

// A write whose outcome is unknown is its own answer: 504, saying to retry
// with the same key; a write that was not done stays 503.
func TestOutcomeUnknownIs504(t *testing.T) {
	s := &Server{}
	for _, tc := range []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"outcome unknown", fmt.Errorf("shard shard0: %w", replica.ErrOutcomeUnknown), http.StatusGatewayTimeout,
			"outcome unknown: the write may or may not have been committed; retry with the same Idempotency-Key"},
		{"outcome unknown after a deadline", fmt.Errorf("%w: %w", replica.ErrOutcomeUnknown, context.DeadlineExceeded), http.StatusGatewayTimeout,
			"outcome unknown"},
		{"no primary", fmt.Errorf("shard shard0: %w", replica.ErrNoPrimary), http.StatusServiceUnavailable, "no primary"},
		{"deadline", context.DeadlineExceeded, http.StatusServiceUnavailable, "did not answer in time"},
		{"closed", router.ErrClosed, http.StatusServiceUnavailable, "shutting down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := s.failure(tc.err)
			assert.Equal(t, tc.status, status)
			assert.Contains(t, msg, tc.msg)
		})
	}
}
