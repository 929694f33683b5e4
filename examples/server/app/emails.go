package app

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

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
