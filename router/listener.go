package router

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

// listenOnce connects to the shard's primary (node idx) with the pools'
// connection settings, listens, purges the caches (anything may have been
// missed while not listening) and handles notifications until the
// connection fails or the primary changes. listened reports that it got as
// far as listening; a nil error means it stopped because the primary moved.
func (r *Router) listenOnce(ctx context.Context, st *shardState, idx int) (listened bool, err error) {
	connectCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := st.set.Connect(connectCtx)
	cancel()
	if err != nil {
		return false, err
	}
	defer func() {
		st.listening.Store(false)
		st.barrier.down()
		st.listenerPID.Store(0)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		conn.Close(closeCtx)
		cancel()
	}()
	own := barrierChannel(conn.PgConn().PID())
	setup := "LISTEN " + pgx.Identifier{r.channel}.Sanitize() + "; LISTEN " + pgx.Identifier{own}.Sanitize()
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
	st.listenerPID.Store(conn.PgConn().PID())
	st.listening.Store(true)
	gen := st.barrier.up(own, lsn)
	st.markUp()
	r.log.Info("cache listener up", "shard", st.name)

	for {
		wait, cancel := context.WithTimeout(ctx, listenWake)
		n, err := conn.WaitForNotification(wait)
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
		if err := r.handle(ctx, conn, st, own, gen, received(conn, n)); err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			return true, err
		}
	}
}

// received returns n and every notification the connection has read
// after it; none of them waits for the network.
func received(conn *pgx.Conn, n *pgconn.Notification) []*pgconn.Notification {
	batch := []*pgconn.Notification{n}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		m, _ := conn.WaitForNotification(done)
		if m == nil {
			return batch
		}
		batch = append(batch, m)
	}
}

// handle acts on a batch of notifications: their keys are dropped, one
// read of the primary's position covers every invalidation in it (each
// committed before it was received, so before the position read now) and
// becomes the floor of later loads, the keys are dropped again, and only
// then do the batch's barrier markers count.
//
// One round trip per batch, not per notification, is what keeps the
// listener abreast of a busy shard: a listener that read the position for
// each notification fell further behind the more writes there were, and
// served entries for whole tenths of a second after their invalidation.
func (r *Router) handle(ctx context.Context, conn *pgx.Conn, st *shardState, own string, gen uint64, batch []*pgconn.Notification) error {
	var keys []string
	invalidated, unknown := false, false
	markers := map[uint64]replica.LSN{}
	for _, n := range batch {
		if n.Channel == own {
			g, lsn, err := parseMarker(n.Payload)
			if err != nil {
				return err
			}
			markers[g] = max(markers[g], lsn)
			continue
		}
		invalidated = true
		k, ok := decodeKeys(n.Payload)
		if !ok {
			unknown = true
			continue
		}
		keys = append(keys, k...)
	}
	if invalidated {
		drop := func() {
			if unknown {
				r.purgeLocal() // a payload this library did not write
			} else {
				r.dropLocal(keys)
			}
		}
		// Dropped at once, the keys are served stale for no round trip; a
		// load that starts before the floor is raised may read a replica
		// that has not replayed the commits and store the old value, so
		// they are dropped again (with any such load) once it is.
		drop()
		if _, err := r.raiseFloorFrom(ctx, conn, st); err != nil {
			r.purgeLocal()
			return err
		}
		drop()
		st.invalidations.Add(uint64(len(keys)))
		st.floorReads.Add(1)
	}
	for g, lsn := range markers {
		st.barrier.marked(g, lsn)
	}
	return nil
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
