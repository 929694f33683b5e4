package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/router"
)

// Idempotency keys. A POST that carries an Idempotency-Key header is done
// at most once per key: the key, a digest of the request and the answer are
// stored in the same transaction as the write, on the shard the write goes
// to. A retry with the same key gets the first answer (with
// Idempotent-Replayed: true) and never makes a second row; a key sent again
// with another request is refused with 422. This is what makes a write
// whose outcome is unknown (504) safe to retry.
//
// A user's posts are keyed on the user's shard. A new user is keyed on the
// shard that the key itself hashes to, and its ID is drawn until it falls
// on that shard too (as many draws as there are shards, on average), so
// that the user and its key are one transaction; a new map that parts
// them before it commits makes it draw again (keyeduser.go).
//
// Keys are kept for Options.IdempotencyTTL (default 24 h); a cleanup on
// every shard, each hour or each TTL/4 if shorter, deletes older ones, and
// a key sent again after that is a new request.

// IdempotencyHeader is the request header that names a POST's key.
const IdempotencyHeader = "Idempotency-Key"

// maxIdempotencyKey bounds a key's length, in bytes.
const maxIdempotencyKey = 255

// idempotencyKey returns the request's key, "" when it has none, or a 400
// that says what is wrong with it.
func idempotencyKey(r *http.Request) (string, error) {
	vals := r.Header.Values(IdempotencyHeader)
	if len(vals) == 0 {
		return "", nil
	}
	if len(vals) > 1 {
		return "", badRequest("%s: sent %d times, want once", IdempotencyHeader, len(vals))
	}
	k := vals[0]
	if k == "" || len(k) > maxIdempotencyKey {
		return "", badRequest("%s: want 1 to %d characters, got %d", IdempotencyHeader, maxIdempotencyKey, len(k))
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x21 || c > 0x7e {
			return "", badRequest("%s: byte %d is %q; want printable ASCII without spaces", IdempotencyHeader, i, c)
		}
	}
	return k, nil
}

// stored is an answer kept with its key.
type stored struct {
	status int
	body   []byte
}

// once runs write in a transaction on t, at most once per (scope, key):
// when the key was already used for the same request it returns the
// answer stored then and replayed = true, without calling write. write
// returns the answer to store; an error from it rolls everything back, key
// included, so that a retry tries again.
func once(ctx context.Context, t router.Target, scope, key string, request []byte,
	write func(pgx.Tx) (stored, error)) (ans stored, replayed bool, err error) {
	digest := sha256.Sum256(request)
	err = t.Tx(ctx, func(tx pgx.Tx) error {
		replayed = false
		// A concurrent request with the same key waits here for the first
		// to end, then finds its row (or, if it rolled back, inserts).
		tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (scope, key, request) VALUES ($1, $2, $3)
			ON CONFLICT (scope, key) DO NOTHING`, scope, key, digest[:])
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var (
				req    []byte
				status *int
				body   []byte
			)
			if err := tx.QueryRow(ctx, `SELECT request, status, response FROM idempotency_keys WHERE scope = $1 AND key = $2`,
				scope, key).Scan(&req, &status, &body); err != nil {
				return err
			}
			if string(req) != string(digest[:]) {
				return &httpError{http.StatusUnprocessableEntity, IdempotencyHeader + ": this key was used for another request to " + scope + "; use a new key for a new request"}
			}
			if status == nil { // cannot happen: the row and its answer commit together
				return fmt.Errorf("%s %q has no stored answer", IdempotencyHeader, key)
			}
			ans, replayed = stored{*status, body}, true
			return nil
		}
		if ans, err = write(tx); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND key = $2`,
			scope, key, ans.status, ans.body)
		return err
	})
	return ans, replayed, err
}

// replay writes a stored answer.
func replay(w http.ResponseWriter, r *http.Request, ans stored) {
	w.Header().Set("Idempotent-Replayed", "true")
	setToken(w, r)
	writeBody(w, ans.status, ans.body)
}

// expireIdempotencyKeys deletes, on every shard, the keys older than ttl,
// and returns how many it deleted. A shard that fails is skipped until the
// next round.
func expireIdempotencyKeys(ctx context.Context, r *router.Router, ttl time.Duration) (int64, error) {
	var (
		n    int64
		errs []error
	)
	for _, t := range r.Shards() {
		tag, err := t.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)`, ttl.Seconds())
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", t.Shard(), err))
			continue
		}
		n += tag.RowsAffected()
	}
	return n, errors.Join(errs...)
}

// expireLoop runs expireIdempotencyKeys every interval until ctx ends.
func (s *Server) expireLoop(ctx context.Context, ttl, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := expireIdempotencyKeys(ctx, s.r, ttl)
		if err != nil {
			s.log.Warn("idempotency keys: cleanup", "err", s.red.String(err.Error()))
		}
		if n > 0 {
			s.log.Debug("idempotency keys expired", "deleted", strconv.FormatInt(n, 10))
		}
	}
}
