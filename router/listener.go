package router

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/replica"
)

// Listener timing: how long one wait for a notification lasts before the
// listener checks that it still listens to the shard's current primary,
// and the bounds of its reconnect backoff.
const (
	listenWake     = time.Second
	listenBackoff0 = 50 * time.Millisecond
	listenBackoffN = 2 * time.Second
)

// listen keeps one LISTEN connection to the shard's current primary until
// ctx ends, reconnecting with backoff. While it is down, the shard's cached
// reads bypass the cache.
func (r *Router) listen(ctx context.Context, st *shardState) {
	backoff := listenBackoff0
	for ctx.Err() == nil {
		idx := st.set.PrimaryIndex()
		if idx >= 0 {
			listened, err := r.listenOnce(ctx, st, idx)
			if ctx.Err() != nil {
				return
			}
			if listened {
				backoff = listenBackoff0 // it had worked: retry promptly
			}
			if err != nil {
				r.log.Warn("cache listener down", "shard", st.name, "err", err.Error())
			}
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, listenBackoffN)
		select {
		case <-ctx.Done():
			return
		case <-time.After(sleep):
		}
	}
}

// listenOnce connects to node idx, listens, purges the caches (anything
// may have been missed while not listening) and handles notifications
// until the connection fails or the primary changes. listened reports that
// it got as far as listening; a nil error means it stopped because the
// primary moved.
func (r *Router) listenOnce(ctx context.Context, st *shardState, idx int) (listened bool, err error) {
	cfg, err := pgx.ParseConfig(st.dsns[idx])
	if err != nil {
		return false, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.Tracer = nil
	connectCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.ConnectConfig(connectCtx, cfg)
	cancel()
	if err != nil {
		return false, err
	}
	defer func() {
		st.listening.Store(false)
		st.barrier.setUp(false)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		conn.Close(closeCtx)
		cancel()
	}()
	own := barrierChannel(conn)
	setup := "LISTEN " + pgx.Identifier{r.channel}.Sanitize() + "; LISTEN " + pgx.Identifier{own}.Sanitize() +
		"; SET synchronous_commit = off"
	if _, err := conn.Exec(ctx, setup); err != nil {
		return false, err
	}
	// Listening now: every commit from here on will be announced. Loads
	// must see at least the present, and what was cached before may be
	// stale; once purged, every entry reflects every commit before the
	// position read here, which is as good as having received their
	// invalidations.
	lsn, err := r.raiseFloorFrom(ctx, conn, st)
	if err != nil {
		return false, err
	}
	r.purgeLocal()
	st.reconnects.Add(1)
	st.listening.Store(true)
	st.barrier.setUp(true)
	st.barrier.advance(lsn, false)
	st.markUp()
	r.log.Info("cache listener up", "shard", st.name)

	for {
		if st.barrier.take() {
			if err := sendMarker(ctx, conn, own); err != nil {
				if ctx.Err() != nil {
					return true, nil
				}
				return true, err
			}
		}
		wait, cancel := context.WithTimeout(ctx, listenWake)
		st.barrier.waiting(cancel)
		n, err := conn.WaitForNotification(wait)
		st.barrier.waiting(nil)
		cancel()
		if ctx.Err() != nil {
			return true, nil
		}
		if n == nil {
			if err != nil && wait.Err() == nil {
				return true, err // the connection failed
			}
			if conn.IsClosed() {
				return true, err
			}
			if st.set.PrimaryIndex() != idx {
				return true, nil // promoted elsewhere: follow the new primary
			}
			continue
		}
		if n.Channel == own {
			marker, err := replica.ParseLSN(n.Payload)
			if err != nil {
				return true, fmt.Errorf("barrier marker: %w", err)
			}
			st.barrier.advance(marker, true)
			continue
		}
		keys, ok := decodeKeys(n.Payload)
		// The notification arrives after its transaction committed, so the
		// position read now is past that commit.
		if _, err := r.raiseFloorFrom(ctx, conn, st); err != nil {
			r.purgeLocal()
			return true, err
		}
		if !ok {
			r.purgeLocal()
			continue
		}
		r.dropLocal(keys)
		st.invalidations.Add(uint64(len(keys)))
	}
}

// raiseFloorFrom reads the primary's WAL insert position on the listener
// connection and makes it the shard's floor for cache loads.
func (r *Router) raiseFloorFrom(ctx context.Context, conn *pgx.Conn, st *shardState) (replica.LSN, error) {
	var text string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&text); err != nil {
		return 0, err
	}
	lsn, err := replica.ParseLSN(text)
	if err != nil {
		return 0, err
	}
	st.raiseFloor(lsn)
	return lsn, nil
}
