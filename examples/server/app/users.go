package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/lookup"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
)

// user is a row of users with its JSON answer encoded once, so that a
// cached read costs no encoding.
type user struct {
	ID        int64
	Name      string
	Email     string // "" when none
	CreatedAt time.Time
	body      []byte
}

// userJSON is a user as the API shows it. IDs are strings: JavaScript
// numbers lose precision past 2^53.
type userJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Shard     string    `json:"shard"`
}

func newUser(id int64, name, email string, created time.Time, shard string) *user {
	u := &user{ID: id, Name: name, Email: email, CreatedAt: created}
	b, _ := json.Marshal(userJSON{ID: strconv.FormatInt(id, 10), Name: name, Email: email, CreatedAt: created, Shard: shard})
	u.body = append(b, '\n')
	return u
}

func userKey(id int64) string { return "user:" + strconv.FormatInt(id, 10) }

type nameBody struct {
	Name *string `json:"name"`
}

// createBody is POST /users: a name and an optional email.
type createBody struct {
	Name  *string `json:"name"`
	Email *string `json:"email"`
}

// now is the creation time the server stamps: its own clock, like the IDs,
// to the microsecond that PostgreSQL keeps.
func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

// POST /users {"name", "email"?} -> 201 user; 409 if the email is taken.
func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var in createBody
	if err := readJSON(w, r, &in); err != nil {
		return err
	}
	name, err := text("name", in.Name, maxName)
	if err != nil {
		return err
	}
	email := ""
	if in.Email != nil {
		if email, err = parseEmail(*in.Email); err != nil {
			return err
		}
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	created := s.now()
	request := []byte(name) // what an Idempotency-Key's answer stands for
	if email != "" {
		request = append(append(request, 0), email...)
	}
	var claim *lookup.Claim
	insert := func(tx pgx.Tx, id int64) error {
		if claim != nil {
			if err := claim.Record(ctx, tx); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO users (id, name, email, created_at) VALUES ($1, $2, NULLIF($3, ''), $4)", id, name, email, created); err != nil {
			return err
		}
		// A "not found" for this ID may be cached (NegativeTTL).
		return router.Invalidate(ctx, tx, userKey(id))
	}
	if key != "" {
		// The key's shard holds the key and the user: one transaction.
		t := s.r.Key(shard.HashString(key))
		id, err := s.idOn(t)
		if err != nil {
			return err
		}
		// The email's lookup row is written first; a key already used
		// replays its answer even though the email is now "taken".
		if claim, err = s.claimEmail(ctx, email, id); errors.Is(err, lookup.ErrDuplicate) {
			claim = nil
			ans, replayed, rerr := once(ctx, t, "POST /users", key, request, func(tx pgx.Tx) (stored, error) {
				return stored{}, emailTaken(email)
			})
			if rerr == nil && replayed {
				s.userHeaders(w, t, "primary")
				replay(w, r, ans)
				return nil
			}
			return emailTaken(email)
		} else if err != nil {
			return err
		}
		ans, replayed, err := once(ctx, t, "POST /users", key, request, func(tx pgx.Tx) (stored, error) {
			return stored{http.StatusCreated, newUser(id, name, email, created, t.Shard()).body}, insert(tx, id)
		})
		if err != nil {
			return s.abandon(ctx, claim, err)
		}
		if replayed && claim != nil {
			_ = s.abandon(ctx, claim, errReplayed)
		}
		s.userHeaders(w, t, "primary")
		if replayed {
			replay(w, r, ans)
			return nil
		}
		w.Header().Set("Location", "/users/"+strconv.FormatInt(id, 10))
		setToken(w, r)
		writeBody(w, ans.status, ans.body)
		return nil
	}
	id, err := s.ids.Next()
	if err != nil {
		return noID(err)
	}
	t := s.r.User(id)
	if claim, err = s.claimEmail(ctx, email, id); errors.Is(err, lookup.ErrDuplicate) {
		return emailTaken(email)
	} else if err != nil {
		return err
	}
	if err := t.Tx(ctx, func(tx pgx.Tx) error { return insert(tx, id) }); err != nil {
		return s.abandon(ctx, claim, err)
	}
	u := newUser(id, name, email, created, t.Shard())
	w.Header().Set("Location", "/users/"+strconv.FormatInt(id, 10))
	s.userHeaders(w, t, "primary")
	setToken(w, r)
	writeBody(w, http.StatusCreated, u.body)
	return nil
}

// idOn draws IDs until one falls on t's shard: a user created under an
// idempotency key lives on the key's shard. With n equal shards it takes n
// draws on average; the bound only guards against a map with a tiny shard.
func (s *Server) idOn(t router.Target) (int64, error) {
	const draws = 1 << 16
	for range draws {
		id, err := s.ids.Next()
		if err != nil {
			return 0, noID(err)
		}
		if s.r.User(id).Shard() == t.Shard() {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no user ID on shard %s in %d draws", t.Shard(), draws)
}

// GET /users/{id} -> 200 user, from the cache when it can.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("id", r.PathValue("id"))
	if err != nil {
		return err
	}
	info := &router.ReadInfo{}
	ctx := router.WithReadInfo(r.Context(), info)
	t := s.r.User(id)
	u, err := s.users.Get(ctx, t, userKey(id), func(ctx context.Context) (*user, error) {
		return loadUser(ctx, t, id)
	})
	if errors.Is(err, cache.ErrNotFound) {
		return &httpError{http.StatusNotFound, "user " + strconv.FormatInt(id, 10) + " not found"}
	}
	if err != nil {
		return err
	}
	s.userHeaders(w, t, info.ServedBy())
	setToken(w, r)
	writeBody(w, http.StatusOK, u.body)
	return nil
}

func loadUser(ctx context.Context, t router.Target, id int64) (*user, error) {
	var name, email string
	var created time.Time
	err := t.QueryRow(ctx, "SELECT name, coalesce(email, ''), created_at FROM users WHERE id = $1", id).Scan(&name, &email, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cache.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return newUser(id, name, email, created.UTC(), t.Shard()), nil
}

// PUT /users/{id} {"name"} -> 200 user; every instance's cache drops it.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("id", r.PathValue("id"))
	if err != nil {
		return err
	}
	var in nameBody
	if err := readJSON(w, r, &in); err != nil {
		return err
	}
	name, err := text("name", in.Name, maxName)
	if err != nil {
		return err
	}
	ctx := r.Context()
	t := s.r.User(id)
	var created time.Time
	var email string
	err = t.Tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "UPDATE users SET name = $2 WHERE id = $1 RETURNING created_at, coalesce(email, '')", id, name).Scan(&created, &email)
		if errors.Is(err, pgx.ErrNoRows) {
			return &httpError{http.StatusNotFound, "user " + strconv.FormatInt(id, 10) + " not found"}
		}
		if err != nil {
			return err
		}
		return router.Invalidate(ctx, tx, userKey(id))
	})
	if err != nil {
		return err
	}
	u := newUser(id, name, email, created.UTC(), t.Shard())
	s.userHeaders(w, t, "primary")
	setToken(w, r)
	writeBody(w, http.StatusOK, u.body)
	return nil
}

// userHeaders says where a single-user answer came from: X-Shard is the
// shard's name, as the body's "shard" says it, and X-Shard-Range its key
// range.
func (s *Server) userHeaders(w http.ResponseWriter, t router.Target, servedBy string) {
	h := w.Header()
	h.Set("X-Shard", t.Shard())
	h.Set("X-Shard-Range", t.Range().String())
	if servedBy != "" {
		h.Set("X-Served-By", servedBy)
	}
}
