package router

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

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
// its own (named after its backend PID, so no other process receives it),
// and a reader that needs a barrier sends, on any connection to the
// primary,
//
//	SELECT pg_notify(<own channel>, <generation> || '/' || pg_current_wal_insert_lsn()::text)
//
// which reads the WAL insert position X and then commits a notification
// carrying X. Any transaction whose commit record was written before X was
// read had queued its notifications before ours, so they reach the
// listener's connection before the marker does: when the listener has
// handled everything it received before the marker, every invalidation of
// a commit before X has been handled. A session's position on a shard is
// read after its own commit completed (or is a position some node had
// replayed), so X >= that position proves the session's invalidations
// arrived. Markers commit with synchronous_commit = off: their commit need
// not be durable, only ordered.
//
// The marker is not sent on the listener's connection: a marker's commit
// waits for the notification lock behind every other notifying commit, and
// the listener must not stop handling invalidations meanwhile. It carries
// the generation of the listener connection it was sent for, so that one
// sent before a reconnect proves nothing to the next connection.
//
// Concurrent readers share markers: one is in flight at a time, and a reader
// that needs a newer one sends it once the last one came back.
type barrier struct {
	send func(ctx context.Context, channel string, gen uint64) error // sends a marker

	mu       sync.Mutex
	received replica.LSN   // every invalidation of a commit before this has been handled
	gen      uint64        // the listener connection's generation
	channel  string        // its own channel; "" while it is down
	inflight bool          // a marker was sent for gen and has not come back yet
	advanced chan struct{} // closed and replaced when received advances or the listener goes up or down
	markers  uint64        // markers sent
}

func newBarrier(send func(ctx context.Context, channel string, gen uint64) error) *barrier {
	return &barrier{send: send, advanced: make(chan struct{})}
}

// reached reports whether every invalidation before lsn has been handled.
func (b *barrier) reached(lsn replica.LSN) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.channel != "" && b.received >= lsn
}

// await waits up to wait for every invalidation before lsn to have been
// handled, sending markers as needed. It returns false when the wait ends
// first, the listener is down, a marker cannot be sent, or ctx ends.
func (b *barrier) await(ctx context.Context, lsn replica.LSN, wait time.Duration) bool {
	if wait <= 0 {
		return b.reached(lsn)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		b.mu.Lock()
		if b.channel == "" || b.received >= lsn {
			ok := b.channel != ""
			b.mu.Unlock()
			return ok
		}
		ch := b.advanced
		send, channel, gen := !b.inflight, b.channel, b.gen
		if send {
			b.inflight = true
			b.markers++
		}
		b.mu.Unlock()
		if send {
			if err := b.send(ctx, channel, gen); err != nil {
				b.mu.Lock()
				if b.gen == gen {
					b.inflight = false // lost or not sent: let the next reader try
				}
				b.broadcast()
				b.mu.Unlock()
				return false
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// marked records a marker of generation gen carrying lsn, once the listener
// has handled everything it received before it.
func (b *barrier) marked(gen uint64, lsn replica.LSN) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen != b.gen || b.channel == "" {
		return // sent for another connection: it proves nothing here
	}
	b.inflight = false
	b.received = max(b.received, lsn)
	b.broadcast()
}

// up marks a new listener connection up, listening on channel, with every
// invalidation before lsn handled (its cache purged); it returns the
// connection's generation.
func (b *barrier) up(channel string, lsn replica.LSN) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	b.channel, b.inflight = channel, false
	b.received = max(b.received, lsn)
	b.broadcast()
	return b.gen
}

// down marks the listener down: no cached read is known to be current.
func (b *barrier) down() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.channel, b.inflight = "", false
	b.broadcast()
}

func (b *barrier) broadcast() {
	close(b.advanced)
	b.advanced = make(chan struct{})
}

func (b *barrier) stats() (received replica.LSN, markers uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.received, b.markers
}

// barrierChannel is a listener connection's own channel for its markers.
func barrierChannel(pid uint32) string {
	return fmt.Sprintf("pgshard_barrier_%d", pid)
}

// sendMarker commits a marker for the listener connection of generation
// gen, listening on channel, from a connection of the shard's primary's
// pool; see barrier.
func (st *shardState) sendMarker(ctx context.Context, channel string, gen uint64) error {
	conn, err := st.set.WriteConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// No arguments: pgx sends it with the simple protocol, as one
	// transaction.
	sql := "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_notify(" + quote(channel) + ", " +
		quote(strconv.FormatUint(gen, 10)+"/") + " || pg_current_wal_insert_lsn()::text); COMMIT"
	if _, err := conn.Exec(ctx, sql); err != nil {
		return conn.Failed(ctx, err)
	}
	return nil
}

// parseMarker reads a marker's payload: its generation and position.
func parseMarker(payload string) (uint64, replica.LSN, error) {
	g, l, ok := strings.Cut(payload, "/")
	if !ok {
		return 0, 0, fmt.Errorf("barrier marker %.40q: want GENERATION/LSN", payload)
	}
	gen, err := strconv.ParseUint(g, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("barrier marker %.40q: %w", payload, err)
	}
	lsn, err := replica.ParseLSN(l)
	if err != nil {
		return 0, 0, fmt.Errorf("barrier marker %.40q: %w", payload, err)
	}
	return gen, lsn, nil
}

// quote makes s an SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
