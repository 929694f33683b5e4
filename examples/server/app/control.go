package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/topology"
)

// DevPasswordVar names the dev cluster's password in the DSNs its
// topology store holds: the store keeps no password.
const DevPasswordVar = "PGSHARD_DEV_PASSWORD"

// followStore is a router configuration that follows the store, and the
// topology that the banner, the redactor and the cache settings use: the
// store's newest map, DSNs expanded.
func followStore(ctx context.Context, store *topology.Store, base *Topology, lookup func(string) (string, bool), log *slog.Logger) (router.Config, *Topology, error) {
	m, err := store.Current(ctx)
	if err != nil {
		return router.Config{}, nil, err
	}
	t := *base
	t.Shards = nil
	for _, sh := range m.Shards {
		st := ShardTopology{Name: sh.Name, Range: sh.Range}
		if st.Primary, err = topology.ExpandDSN(sh.Primary, lookup); err != nil {
			return router.Config{}, nil, fmt.Errorf("shard %s: %w", sh.Name, err)
		}
		for _, r := range sh.Replicas {
			d, err := topology.ExpandDSN(r, lookup)
			if err != nil {
				return router.Config{}, nil, fmt.Errorf("shard %s: %w", sh.Name, err)
			}
			st.Replicas = append(st.Replicas, d)
		}
		t.Shards = append(t.Shards, st)
	}
	cfg := t.RouterConfig(log)
	cfg.Shards, cfg.Store, cfg.Lookup = nil, store, lookup
	return cfg, &t, nil
}

// controlTopology is what a server that follows a store at -control uses
// besides the map: the dev cluster's pool and cache settings.
func controlTopology() *Topology {
	return &Topology{MaxConns: 16, Cache: CacheTopology{Capacity: 100_000, TTL: 5 * time.Minute, NegativeTTL: time.Second}}
}

// devStore keeps the dev cluster's map in a topology store in the first
// shard's primary (its database, schema pgshard), as version 1 or, when a
// kept -data folder's map differs (new ports), the next version. It
// returns the store, the control DSN with the password as ${PGSHARD_DEV_PASSWORD},
// and a lookup that knows the password.
func devStore(ctx context.Context, t *Topology) (*topology.Store, string, func(string) (string, bool), error) {
	u, err := url.Parse(t.Shards[0].Primary)
	if err != nil || u.User == nil {
		return nil, "", nil, errors.New("dev cluster: its primary's DSN has no user")
	}
	password, _ := u.User.Password()
	hide := func(dsn string) string {
		return strings.Replace(dsn, ":"+password+"@", ":${"+DevPasswordVar+"}@", 1)
	}
	lookup := func(k string) (string, bool) {
		if k == DevPasswordVar {
			return password, true
		}
		return os.LookupEnv(k)
	}
	store, err := topology.Open(ctx, t.Shards[0].Primary)
	if err != nil {
		return nil, "", nil, err
	}
	m := &topology.Map{}
	for _, sh := range t.Shards {
		s := topology.Shard{Name: sh.Name, Range: sh.Range, Primary: hide(sh.Primary)}
		for _, r := range sh.Replicas {
			s.Replicas = append(s.Replicas, hide(r))
		}
		m.Shards = append(m.Shards, s)
	}
	err = store.Init(ctx)
	var cur *topology.Map
	if err == nil {
		cur, err = store.Current(ctx)
	}
	if errors.Is(err, topology.ErrNoMap) || err == nil && !sameShards(cur, m) {
		_, err = store.Apply(ctx, m, topology.ApplyOptions{By: "examples/server", Reason: "dev cluster started", Lookup: lookup})
	}
	if err != nil {
		store.Close()
		return nil, "", nil, fmt.Errorf("dev cluster: topology store: %w", err)
	}
	return store, hide(t.Shards[0].Primary), lookup, nil
}

func sameShards(a, b *topology.Map) bool {
	if err := b.Validate(); err != nil {
		return false
	}
	return slices.EqualFunc(a.Shards, b.Shards, func(x, y topology.Shard) bool {
		return x.Name == y.Name && x.Range == y.Range && x.Primary == y.Primary && x.State == y.State && slices.Equal(x.Replicas, y.Replicas)
	})
}
