package router

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// Config describes the shards and how to use them. Only Shards is required.
type Config struct {
	// Shards lists every shard; their ranges must cover the keyspace with
	// no gap and no overlap.
	Shards []ShardConfig
	// Replica tunes every shard's replica set: check interval, lag
	// bounds, fallback policy. The zero value takes replica's defaults.
	Replica replica.Options
	// Tracer, if set, receives every shard's read attempts, write outcomes
	// and node health changes; it overrides Replica.Tracer. Nil means
	// Replica.Tracer. Besides the ops of replica.WriteEvent, a transaction
	// of BeginTx is reported as "tx" when it commits or rolls back (a
	// read-only one as one read), SendBatch as "batch" when its results are
	// closed, and CopyFrom as "copy".
	Tracer replica.Tracer
	// Cache holds the options of caches made with NewCache given the zero
	// cache.Options. Its fields mean what cache.Options says: zero
	// Capacity is cache.DefaultCapacity (10,000 entries).
	Cache cache.Options
	// SessionCacheWait bounds how long a cached read under a session waits
	// for this process to have received every cache invalidation up to the
	// session's position on the shard (a marker committed on the primary
	// and received by the shard's listener, shared by concurrent readers).
	// A read that waits longer reads past the cache, without evicting the
	// cached entry.
	// Default 50 ms; negative means never wait.
	SessionCacheWait time.Duration
	// Channel is the LISTEN/NOTIFY channel that carries cache
	// invalidations between processes. Default "pgshard_invalidate".
	// Processes that share shards and caches must use the same channel.
	Channel string
	// Store, if set, is the topology store the router follows instead of
	// Shards (which must then be empty): it serves the store's newest map,
	// LISTENs for new versions, reads the store every PollInterval as a
	// backstop, and keeps serving on its last map while the store is away
	// (Stats.Map says so). The router does not close the store. It writes
	// to a shard only while it holds a lease on it, renewed by those fence
	// reads (see package topology), and removes a fence's triggers once no
	// router with an older map can hold one.
	Store *topology.Store
	// PollInterval is how often a router that follows a Store reads its
	// newest version even without a notification. Default 5 s.
	PollInterval time.Duration
	// FenceWait bounds how long a write, under a router that follows a
	// Store, waits when its shard's fence refuses it (the range moved) or
	// the shard is fenced: the write is retried on the range's owner in
	// the newest map, and fails with topology.ErrFenced after FenceWait.
	// A Tx function may then run more than once. Reads wait the same way
	// once the router has read, on a shard's primary (every 500 ms), a
	// fence that moved the shard's range in a map it does not have yet.
	// Default 10 s.
	FenceWait time.Duration
	// Lookup expands the $VAR and ${VAR} in the Store's DSNs. Default
	// os.LookupEnv.
	Lookup func(string) (string, bool)
	// Logger receives the router's events (listener reconnects, shards
	// and replicas unreachable at open) and, unless Replica.Logger is set,
	// the replica sets' (role changes, ejections). Nil is silent.
	Logger *slog.Logger
}

// ShardConfig is one shard: its key range and its servers.
type ShardConfig struct {
	// Name identifies the shard in errors, stats and session tokens.
	// Default: the range's text, such as "-80".
	Name string
	// Range is the shard's key range, such as "-80" or "40-80".
	Range string
	// Primary is the DSN (libpq key=value or URL) of the shard's primary.
	Primary string
	// Replicas are the DSNs of its streaming replicas; may be empty.
	Replicas []string
	// Weights optionally gives each replica a relative share of the
	// shard's reads, in the order of Replicas. Nil or zero entries mean
	// weight 1.
	Weights []int
}

const (
	defaultChannel          = "pgshard_invalidate"
	defaultSessionCacheWait = 50 * time.Millisecond
)

func (c Config) sessionCacheWait() time.Duration {
	switch {
	case c.SessionCacheWait < 0:
		return 0
	case c.SessionCacheWait == 0:
		return defaultSessionCacheWait
	}
	return c.SessionCacheWait
}

// validate checks the shard list and builds the shard map.
func (c Config) validate() (*shard.Map, []string, error) {
	if len(c.Shards) == 0 {
		return nil, nil, fmt.Errorf("%w: no shards", ErrInvalidConfig)
	}
	assign := make(map[string]shard.Range, len(c.Shards))
	names := make([]string, len(c.Shards))
	for i, sc := range c.Shards {
		r, err := shard.ParseRange(sc.Range)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: Shards[%d] (%q): Range: %w", ErrInvalidConfig, i, sc.Name, err)
		}
		name := sc.Name
		if name == "" {
			name = r.String()
		}
		if _, dup := assign[name]; dup {
			return nil, nil, fmt.Errorf("%w: Shards[%d]: name %q is used twice", ErrInvalidConfig, i, name)
		}
		if sc.Primary == "" {
			return nil, nil, fmt.Errorf("%w: shard %q: Primary is empty", ErrInvalidConfig, name)
		}
		assign[name] = r
		names[i] = name
	}
	if err := c.checkNodes(names); err != nil {
		return nil, nil, err
	}
	m, err := shard.NewMap(assign)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if !validChannel(c.channel()) {
		return nil, nil, fmt.Errorf("%w: Channel %q: want 1 to 63 letters, digits or underscores", ErrInvalidConfig, c.Channel)
	}
	return m, names, nil
}

// checkNodes refuses a node listed twice: as primary and replica of one
// shard, twice in one shard, or under two shards. Writes would otherwise
// find two primaries, or one server would be counted as two. Nodes are
// compared by host, port and database as written (localhost and 127.0.0.1
// are not resolved); a DSN that does not parse is left to the replica set,
// which reports it.
func (c Config) checkNodes(names []string) error {
	type place struct{ shard, what string }
	seen := map[string]place{}
	for i, sc := range c.Shards {
		servers := map[string]string{} // host:port -> which: a replica cannot be its own primary
		for j, dsn := range append([]string{sc.Primary}, sc.Replicas...) {
			what := "Primary"
			if j > 0 {
				what = fmt.Sprintf("Replicas[%d]", j-1)
			}
			cfg, err := pgconn.ParseConfig(dsn)
			if err != nil {
				continue
			}
			server := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
			node := server + "/" + cfg.Database
			if p, dup := seen[node]; dup {
				if p.shard == names[i] {
					return fmt.Errorf("%w: shard %q: node %s is listed twice (%s and %s)", ErrInvalidConfig, names[i], node, p.what, what)
				}
				return fmt.Errorf("%w: node %s is listed under two shards (%q %s and %q %s)", ErrInvalidConfig, node, p.shard, p.what, names[i], what)
			}
			if other, dup := servers[server]; dup {
				return fmt.Errorf("%w: shard %q: %s and %s are the same server %s", ErrInvalidConfig, names[i], other, what, server)
			}
			seen[node] = place{shard: names[i], what: what}
			servers[server] = what
		}
	}
	return nil
}

func (c Config) channel() string {
	if c.Channel == "" {
		return defaultChannel
	}
	return c.Channel
}

// validChannel keeps the channel a plain identifier: LISTEN quotes it, so
// case is kept, and pg_notify sees the same name.
func validChannel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
