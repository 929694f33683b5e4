package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/replica"
)

// The barrier tells a cached read under a session when this process has
// received every cache invalidation up to the session's position on a
// shard, so that a cached entry can serve the session instead of being read
// past (and certainly instead of being evicted for everyone).
//
// Why it is sound: PostgreSQL queues notifications in commit order. A
// transaction that notifies takes a lock in its pre-commit step and holds it
// until after its commit, and the queue is delivered in order, never past
// an uncommitted entry. The listener's connection listens on a channel of
// its own (named after its backend PID, so no other process receives it)
// and, to set a barrier, runs
//
//	SELECT pg_notify(<own channel>, pg_current_wal_insert_lsn()::text)
//
// which reads the WAL insert position X and then commits a notification
// carrying X (the payload is what counts; see sendMarker). Any transaction whose commit record was written before X was
// read had queued its notifications before ours, so they reach this
// connection before the marker does: when the marker arrives, every
// invalidation of a commit before X has been handled. A session's position
// on a shard is read after its own commit completed (or is a position some
// node had replayed), so X >= that position proves the session's
// invalidations arrived. Markers use synchronous_commit = off: their commit
// need not be durable, only ordered.
//
// Concurrent readers share markers: one is in flight at a time, and a reader
// that needs a newer one asks for it and waits for the next.
type barrier struct {
	mu       sync.Mutex
	received replica.LSN   // every invalidation of a commit before this has been handled
	wanted   bool          // a reader waits for a marker sent after it asked
	inflight bool          // a marker was sent and has not come back yet
	up       bool          // the listener is up
	wake     func()        // ends the listener's current wait, nil when it is not waiting
	advanced chan struct{} // closed and replaced when received advances or up changes
	markers  uint64        // markers sent
}

func newBarrier() *barrier { return &barrier{advanced: make(chan struct{})} }

// reached reports whether every invalidation before lsn has been handled.
func (b *barrier) reached(lsn replica.LSN) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.up && b.received >= lsn
}

// await waits up to wait for every invalidation before lsn to have been
// handled, asking the listener for markers as needed. It returns false when
// the wait ends first, the listener is down, or ctx ends.
func (b *barrier) await(ctx context.Context, lsn replica.LSN, wait time.Duration) bool {
	var timer *time.Timer
	for {
		b.mu.Lock()
		if !b.up || b.received >= lsn {
			ok := b.up
			b.mu.Unlock()
			return ok
		}
		if wait <= 0 {
			b.mu.Unlock()
			return false
		}
		ch := b.advanced
		if !b.wanted {
			b.wanted = true
			if !b.inflight && b.wake != nil {
				b.wake()
			}
		}
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// advance records that every invalidation before lsn has been handled.
func (b *barrier) advance(lsn replica.LSN, marker bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if marker {
		b.inflight = false
	}
	if lsn > b.received {
		b.received = lsn
	}
	b.broadcast()
}

// setUp marks the listener up (with received, as of its connection) or down.
func (b *barrier) setUp(up bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.up = up
	b.wanted, b.inflight, b.wake = false, false, nil
	b.broadcast()
}

func (b *barrier) broadcast() {
	close(b.advanced)
	b.advanced = make(chan struct{})
}

// take reports whether the listener should send a marker now, and if so
// counts it as in flight.
func (b *barrier) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.wanted || b.inflight {
		return false
	}
	b.wanted, b.inflight = false, true
	b.markers++
	return true
}

// waiting installs the function that ends the listener's wait (nil once it
// returned). If a marker is wanted already, it ends the wait at once.
func (b *barrier) waiting(wake func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wake = wake
	if wake != nil && b.wanted && !b.inflight {
		wake()
	}
}

func (b *barrier) stats() (received replica.LSN, markers uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.received, b.markers
}

// barrierChannel is the listener connection's own channel for its markers.
func barrierChannel(conn *pgx.Conn) string {
	return fmt.Sprintf("pgshard_barrier_%d", conn.PgConn().PID())
}

// sendMarker queues a marker carrying the WAL insert position; see barrier.
// The statement starts like the listener's floor query, so that one
// pattern on pg_stat_activity.query finds the listener's session whatever
// it ran last.
func sendMarker(ctx context.Context, conn *pgx.Conn, channel string) error {
	_, err := conn.Exec(ctx, "SELECT pg_current_wal_insert_lsn()::text, pg_notify($1, pg_current_wal_insert_lsn()::text)", channel)
	return err
}
