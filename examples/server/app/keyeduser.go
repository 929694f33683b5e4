package app

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/lookup"
	"github.com/pgshard/pgshard/shard"
)

// A user created under an Idempotency-Key lives on the shard its key
// hashes to, with the key, in one transaction: its ID is drawn until it
// falls there. A new map (a reshard's switch) may come between the draw
// and the commit. The shard's fence then refuses the transaction and the
// router runs it again on the key's new shard, which need not own the ID:
// the row would land where reads of the ID never look. So the transaction
// checks, under the map in use when it runs, that the ID's shard is the
// key's, and otherwise rolls back; the user is created again with a new ID
// (and a new email claim), at most keyedDraws times.

// errIDMoved rolls back a keyed create whose ID and key no longer share a
// shard.
var errIDMoved = errors.New("a new shard map put the user's ID and its idempotency key on different shards")

// keyedDraws bounds the IDs a keyed create draws: one more for each map
// change that comes between a draw and its transaction.
const keyedDraws = 4

// createKeyed is POST /users with an Idempotency-Key.
func (s *Server) createKeyed(w http.ResponseWriter, r *http.Request, key string, c creation) error {
	h := shard.HashString(key)
	for range keyedDraws {
		if err := s.tryKeyed(w, r, key, h, c); !errors.Is(err, errIDMoved) {
			return err
		}
	}
	return &httpError{http.StatusServiceUnavailable, fmt.Sprintf(
		"the shard map changed %d times while the user was being created; nothing was written; retry with the same %s",
		keyedDraws, IdempotencyHeader)}
}

// tryKeyed draws an ID on the shard of the key's hash h and creates the
// user with it, or returns errIDMoved, having written nothing, if a new map
// moved the ID or the key meanwhile.
func (s *Server) tryKeyed(w http.ResponseWriter, r *http.Request, key string, h shard.ID, c creation) error {
	ctx := r.Context()
	id, err := s.idOn(h)
	if err != nil {
		return err
	}
	if s.drewID != nil {
		s.drewID(id)
	}
	t := s.r.Key(h)
	// The email's lookup row is written first; a key already used
	// replays its answer even though the email is now "taken".
	claim, err := s.claimEmail(ctx, c.email, id)
	if errors.Is(err, lookup.ErrDuplicate) {
		ans, replayed, rerr := once(ctx, t, "POST /users", key, c.request(), func(tx pgx.Tx) (stored, error) {
			return stored{}, emailTaken(c.email)
		})
		if rerr == nil && replayed {
			s.userHeaders(w, s.r.Key(h), "primary")
			replay(w, r, ans)
			return nil
		}
		return emailTaken(c.email)
	} else if err != nil {
		return err
	}
	ans, replayed, err := once(ctx, t, "POST /users", key, c.request(), func(tx pgx.Tx) (stored, error) {
		// The router runs this on the key's shard under its newest map;
		// the fence refuses it under an older one.
		m := s.r.Map()
		at := m.Lookup(h)
		if m.Lookup(shard.HashInt64(id)) != at {
			return stored{}, errIDMoved
		}
		return stored{http.StatusCreated, newUser(id, c.name, c.email, c.created, at).body}, c.insert(ctx, tx, id, claim)
	})
	if err != nil {
		return s.abandon(ctx, claim, err)
	}
	if replayed && claim != nil {
		_ = s.abandon(ctx, claim, errReplayed)
	}
	s.userHeaders(w, s.r.Key(h), "primary")
	if replayed {
		replay(w, r, ans)
		return nil
	}
	w.Header().Set("Location", "/users/"+strconv.FormatInt(id, 10))
	setToken(w, r)
	writeBody(w, ans.status, ans.body)
	return nil
}

// idOn draws IDs until one falls on the shard of keyspace ID h. With n
// equal shards it takes n draws on average; the bound only guards against
// a map with a tiny shard.
func (s *Server) idOn(h shard.ID) (int64, error) {
	const draws = 1 << 16
	for range draws {
		id, err := s.ids.Next()
		if err != nil {
			return 0, noID(err)
		}
		if m := s.r.Map(); m.Lookup(shard.HashInt64(id)) == m.Lookup(h) {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no user ID on shard %s in %d draws", s.r.Map().Lookup(h), draws)
}
