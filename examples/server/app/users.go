package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/lookup"
	"github.com/pgshard/pgshard/router"
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
	c := creation{name: name, email: email, created: s.now()}
	if key != "" {
		return s.createKeyed(w, r, key, c)
	}
	ctx := r.Context()
	id, err := s.ids.Next()
	if err != nil {
		return noID(err)
	}
	claim, err := s.claimEmail(ctx, email, id)
	if errors.Is(err, lookup.ErrDuplicate) {
		return emailTaken(email)
	} else if err != nil {
		return err
	}
	// Routed by the ID: a write a reshard's fence refuses is sent again to
	// the ID's new shard.
	if err := s.r.User(id).Tx(ctx, func(tx pgx.Tx) error { return c.insert(ctx, tx, id, claim) }); err != nil {
		return s.abandon(ctx, claim, err)
	}
	t := s.r.User(id) // where it was written, should a new map have moved it meanwhile
	u := newUser(id, name, email, c.created, t.Shard())
	w.Header().Set("Location", "/users/"+strconv.FormatInt(id, 10))
	s.userHeaders(w, t, "primary")
	setToken(w, r)
	writeBody(w, http.StatusCreated, u.body)
	return nil
}

// creation is a new user as POST /users asks for it, before it has an ID.
type creation struct {
	name, email string
	created     time.Time
}

// request is what an Idempotency-Key's answer stands for.
func (c creation) request() []byte {
	b := []byte(c.name)
	if c.email != "" {
		b = append(append(b, 0), c.email...)
	}
	return b
}

// insert writes the user row with ID id in tx, and records the email's
// claim (nil: none) in the same transaction.
func (c creation) insert(ctx context.Context, tx pgx.Tx, id int64, claim *lookup.Claim) error {
	if claim != nil {
		if err := claim.Record(ctx, tx); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO users (id, name, email, created_at) VALUES ($1, $2, NULLIF($3, ''), $4)", id, c.name, c.email, c.created); err != nil {
		return err
	}
	// A "not found" for this ID may be cached (NegativeTTL).
	return router.Invalidate(ctx, tx, userKey(id))
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
