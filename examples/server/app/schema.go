package app

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
)

// schema is applied on every shard primary at start, by every instance:
// each statement must be idempotent. A user's posts live on the user's
// shard; posts_recent serves the recent feed's ORDER BY id DESC LIMIT N.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS users (
		id bigint PRIMARY KEY,
		name text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`,
	`CREATE TABLE IF NOT EXISTS posts (
		user_id bigint NOT NULL,
		id bigint NOT NULL,
		body text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (user_id, id))`,
	`CREATE INDEX IF NOT EXISTS posts_recent ON posts (id DESC)`,
	// An optional email, unique across shards through the user_emails
	// lookup (package lookup): these are its Schema (TestEmailSchema).
	`ALTER TABLE users ADD COLUMN IF NOT EXISTS email text`,
	`CREATE TABLE IF NOT EXISTS "user_emails" (key text PRIMARY KEY, owner bigint NOT NULL, token text NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS "user_emails_claims" (token text PRIMARY KEY, void boolean NOT NULL DEFAULT false)`,
	// Idempotency keys (idempotency.go): scope is the method and path of
	// the request, so that a key names one request of one route; request is
	// the SHA-256 of what the write would store.
	`CREATE TABLE IF NOT EXISTS idempotency_keys (
		scope text NOT NULL,
		key text NOT NULL,
		request bytea NOT NULL,
		status int,
		response bytea,
		created_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (scope, key))`,
	`CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at)`,
}

// applySchema runs the schema on every shard. Two instances starting at
// once may race on IF NOT EXISTS (a unique violation in the catalog); the
// loser tries again. A statement that fails on some shard (one that is
// down) does not keep the later ones from the shards that work; the first
// failure is returned once all have run.
func applySchema(ctx context.Context, r *router.Router) error {
	var first error
	for _, stmt := range schema {
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = r.ExecAll(ctx, stmt); err == nil || !catalogRace(err) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	return awaitReplicas(ctx, r, 10*time.Second)
}

// awaitReplicas waits, up to limit, until every replica in rotation has
// replayed the schema: until then a token-less read sent to one could
// find no table there. The position to reach is read after the schema by a
// no-op written under a session, on each shard.
func awaitReplicas(ctx context.Context, r *router.Router, limit time.Duration) error {
	sess := router.NewSession()
	for _, t := range r.Shards() {
		if _, err := t.Exec(router.WithSession(ctx, sess), "SELECT 1"); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(limit)
	for !replayed(r, sess) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// replayed reports whether every eligible replica has reached the
// session's position on its shard.
func replayed(r *router.Router, sess *router.Session) bool {
	for _, sh := range r.Stats().Shards {
		for _, n := range sh.Replica.Nodes {
			if n.Role == replica.RoleReplica && n.Eligible && n.LSN < sess.LSN(sh.Name) {
				return false
			}
		}
	}
	return true
}

// applySchemaLater retries the schema every interval until it is applied
// on every shard or ctx ends, then marks the server ready. It lets the
// server start while a shard is down: /readyz says 503 until then.
func (s *Server) applySchemaLater(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := applySchema(ctx, s.r); err != nil {
			s.log.Debug("schema not applied yet", "err", err.Error())
			continue
		}
		s.schemaReady.Store(true)
		s.log.Info("schema applied on every shard")
		return
	}
}

// unavailableOnly reports whether err is only shards that cannot be
// reached, with at least one other shard fine: a start worth continuing.
func unavailableOnly(err error, shards int) bool {
	me, ok := errors.AsType[*router.MultiError](err)
	if !ok || len(me.Errs) >= shards {
		return false
	}
	for _, se := range me.Errs {
		if !errors.Is(se, replica.ErrNoPrimary) {
			return false
		}
	}
	return true
}

func catalogRace(err error) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	return ok && (pe.Code == "23505" || pe.Code == "42P07")
}
