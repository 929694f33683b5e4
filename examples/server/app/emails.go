package app

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/lookup"
	"github.com/pgshard/pgshard/router"
)

// maxEmail is the longest address RFC 5321 allows.
const maxEmail = 254

// parseEmail checks an email address loosely (one @, something on each
// side, no spaces or NUL, at most 254 bytes) and lowers its case, so that
// one mailbox is one key.
func parseEmail(s string) (string, error) {
	at := strings.IndexByte(s, '@')
	switch {
	case s == "":
		return "", badRequest("email: must not be empty (leave it out for none)")
	case len(s) > maxEmail:
		return "", badRequest("email: %d bytes, at most %d", len(s), maxEmail)
	case !utf8.ValidString(s) || strings.ContainsAny(s, " \t\r\n\x00"):
		return "", badRequest("email: must be valid UTF-8 without spaces or NUL")
	case at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1:
		return "", badRequest("email: %.60q is not an address (want local@domain)", s)
	}
	return strings.ToLower(s), nil
}

func emailTaken(email string) error {
	return &httpError{http.StatusConflict, "email " + email + " is already taken"}
}

// errReplayed abandons a claim made for a request whose key had already
// been answered.
var errReplayed = errors.New("request replayed")

// claimEmail writes the email's lookup row for user id, or returns
// lookup.ErrDuplicate; none for a user without email.
func (s *Server) claimEmail(ctx context.Context, email string, id int64) (*lookup.Claim, error) {
	if email == "" {
		return nil, nil
	}
	return s.emails.Claim(ctx, email, id)
}

// abandon removes the lookup row of a user that was not written, and says
// what to answer: 409 if another request took the email meanwhile.
func (s *Server) abandon(ctx context.Context, c *lookup.Claim, err error) error {
	if c == nil {
		return err
	}
	err = c.Abandon(ctx, err)
	if errors.Is(err, lookup.ErrDuplicate) {
		return &httpError{http.StatusConflict, err.Error()}
	}
	return err
}

// GET /users?email= -> 200 the user with that email, or 404.
func (s *Server) userByEmail(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if !q.Has("email") || len(q) != 1 {
		return badRequest("want exactly one query parameter, email")
	}
	email, err := parseEmail(q.Get("email"))
	if err != nil {
		return err
	}
	info := &router.ReadInfo{}
	ctx := router.WithReadInfo(r.Context(), info)
	id, err := s.emails.Get(ctx, email)
	if errors.Is(err, lookup.ErrNotFound) {
		return &httpError{http.StatusNotFound, "no user with email " + email}
	}
	if err != nil {
		return err
	}
	t := s.r.User(id)
	u, err := s.users.Get(ctx, t, userKey(id), func(ctx context.Context) (*user, error) {
		return loadUser(ctx, t, id)
	})
	if errors.Is(err, cache.ErrNotFound) || err == nil && u.Email != email {
		// Deleted, or the cache has not heard of a change yet.
		return &httpError{http.StatusNotFound, "no user with email " + email}
	}
	if err != nil {
		return err
	}
	s.userHeaders(w, t, info.ServedBy())
	setToken(w, r)
	writeBody(w, http.StatusOK, u.body)
	return nil
}

// emailBody is PUT /users/{id}/email.
type emailBody struct {
	Email *string `json:"email"`
}

// PUT /users/{id}/email {"email"} -> 200 user; 409 if the email is taken.
func (s *Server) changeEmail(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("id", r.PathValue("id"))
	if err != nil {
		return err
	}
	var in emailBody
	if err := readJSON(w, r, &in); err != nil {
		return err
	}
	if in.Email == nil {
		return badRequest("email: required (DELETE /users/{id}/email removes it)")
	}
	email, err := parseEmail(*in.Email)
	if err != nil {
		return err
	}
	return s.setEmail(w, r, id, email)
}

// DELETE /users/{id}/email -> 200 user, without an email.
func (s *Server) deleteEmail(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("id", r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.setEmail(w, r, id, "")
}

// errEmailMoved refuses a change made from an email the user no longer has.
var errEmailMoved = &httpError{http.StatusConflict, "the user's email changed meanwhile; send the request again"}

// setEmail gives user id the email ("" for none) in the order of the
// lookup package: the new email's lookup row first, the user second, the
// old email's lookup row last. The change is made from the email the
// primary shows now, and fails with 409 if another change came between.
func (s *Server) setEmail(w http.ResponseWriter, r *http.Request, id int64, email string) error {
	ctx := r.Context()
	t := s.r.User(id)
	notFound := &httpError{http.StatusNotFound, "user " + strconv.FormatInt(id, 10) + " not found"}
	var old string
	// Read in a transaction, as a write goes: it waits out a fenced shard
	// and follows a switchover, where a read of the primary would fail.
	err := t.Tx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT coalesce(email, '') FROM users WHERE id = $1", id).Scan(&old)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound
	}
	if err != nil {
		return err
	}
	var u *user
	err = s.emails.Change(ctx, old, email, id, func(tx pgx.Tx) error {
		var name string
		var created time.Time
		err := tx.QueryRow(ctx, "UPDATE users SET email = NULLIF($3, '') WHERE id = $1 AND coalesce(email, '') = $2 RETURNING name, created_at",
			id, old, email).Scan(&name, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", id).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return notFound
			}
			return errEmailMoved
		}
		if err != nil {
			return err
		}
		u = newUser(id, name, email, created.UTC(), t.Shard())
		return router.Invalidate(ctx, tx, userKey(id))
	})
	if errors.Is(err, lookup.ErrDuplicate) {
		return emailTaken(email)
	}
	if err != nil {
		return err
	}
	s.userHeaders(w, t, "primary")
	setToken(w, r)
	writeBody(w, http.StatusOK, u.body)
	return nil
}
