package router

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/cache"
)

// maxPayload keeps each notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7900

// routerTx is the transaction Target.Tx hands to its function, or
// Target.BeginTx returns: a pgx.Tx that remembers which cache keys to drop
// at commit.
type routerTx struct {
	pgx.Tx
	t    Target
	keys *[]string
	own  *owned // set for BeginTx's transaction, which ends the connection's loan
}

// Commit commits; see Target.BeginTx. A savepoint, or the transaction of
// a Tx function, commits as pgx does.
func (tx *routerTx) Commit(ctx context.Context) error {
	if tx.own == nil {
		return tx.Tx.Commit(ctx)
	}
	return tx.commitOwned(ctx)
}

// Rollback rolls back; after Commit or Rollback it returns pgx.ErrTxClosed.
func (tx *routerTx) Rollback(ctx context.Context) error {
	if tx.own == nil {
		return tx.Tx.Rollback(ctx)
	}
	return tx.rollbackOwned(ctx)
}

// Begin starts a savepoint that Invalidate also accepts.
func (tx *routerTx) Begin(ctx context.Context) (pgx.Tx, error) {
	inner, err := tx.Tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &routerTx{Tx: inner, t: tx.t, keys: tx.keys}, nil
}

// Invalidate drops cacheKeys from every cache, in every process using the
// same shards, when tx commits. It must be called with the transaction of
// a Target.Tx function. It queues pg_notify in tx, so the invalidation
// commits or rolls back with the write: at commit this process drops the
// keys at once and other processes when the notification arrives (usually
// within milliseconds). Writes that bypass Invalidate are seen by caches
// only when their entries expire (cache.Options.TTL).
func Invalidate(ctx context.Context, tx pgx.Tx, cacheKeys ...string) error {
	rtx, ok := tx.(*routerTx)
	if !ok {
		return ErrNotRouterTx
	}
	if len(cacheKeys) == 0 {
		return nil
	}
	payloads, err := encodeKeys(cacheKeys)
	if err != nil {
		return err
	}
	_, err = rtx.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, rtx.t.r.channel, payloads)
	if err != nil {
		return fmt.Errorf("router: invalidate on shard %s: %w", rtx.t.s.name, err)
	}
	*rtx.keys = append(*rtx.keys, cacheKeys...)
	return nil
}

// encodeKeys packs keys into JSON arrays of at most maxPayload bytes each.
func encodeKeys(keys []string) ([]string, error) {
	var payloads []string
	var batch []string
	size := 2
	for _, k := range keys {
		b, err := json.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("router: cache key %.40q: %w", k, err)
		}
		if len(b)+2 > maxPayload {
			return nil, fmt.Errorf("router: cache key %.40q...: %d bytes encoded, at most %d", k, len(b), maxPayload-2)
		}
		if size+len(b)+1 > maxPayload {
			p, _ := json.Marshal(batch)
			payloads = append(payloads, string(p))
			batch, size = nil, 2
		}
		batch = append(batch, k)
		size += len(b) + 1
	}
	if len(batch) > 0 {
		p, _ := json.Marshal(batch)
		payloads = append(payloads, string(p))
	}
	return payloads, nil
}

// decodeKeys reads a notification payload; ok is false for a payload this
// library did not write, which the listener answers by purging.
func decodeKeys(payload string) (keys []string, ok bool) {
	if err := json.Unmarshal([]byte(payload), &keys); err != nil {
		return nil, false
	}
	return keys, true
}

// invalidator is what the router needs of each cache.
type invalidator interface {
	drop(keys []string)
	purge()
	stats() (string, cache.Stats)
	close()
}

func (r *Router) register(c invalidator) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.caches = append(r.caches, c)
}

func (r *Router) cachesNow() []invalidator {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]invalidator(nil), r.caches...)
}

// dropLocal removes keys from every cache of this process.
func (r *Router) dropLocal(keys []string) {
	for _, c := range r.cachesNow() {
		c.drop(keys)
	}
}

// purgeLocal empties every cache of this process.
func (r *Router) purgeLocal() {
	for _, c := range r.cachesNow() {
		c.purge()
	}
}
