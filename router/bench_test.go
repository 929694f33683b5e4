package router_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/router"
)

// The machine these run on is shared and noisy, so each comparison
// alternates its two sides inside one loop and reports their time ratio:
// both sides see the same noise.

func benchRouter(b *testing.B) *router.Router {
	b.Helper()
	cfg := config(b, cluster)
	cfg.Replica.CheckInterval = 250 * time.Millisecond // the default
	cfg.Cache = cache.Options{Capacity: 10000, TTL: time.Minute}
	r := open(b, cfg)
	schema(b, r)
	ctx := context.Background()
	for id := int64(1); id <= 100; id++ {
		if _, err := r.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", id, fmt.Sprintf("user %d", id)); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// interleave runs a and b alternately and reports the median time of b
// over that of a.
func interleave(b *testing.B, unit string, a, bb func(i int)) {
	var ta, tb []time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		a(i)
		t1 := time.Now()
		bb(i)
		ta = append(ta, t1.Sub(t0))
		tb = append(tb, time.Since(t1))
	}
	// The ratio of medians: a descheduled call or a GC pause on one side
	// does not move it the way it moves a ratio of sums.
	slices.Sort(ta)
	slices.Sort(tb)
	b.ReportMetric(float64(tb[len(tb)/2])/float64(ta[len(ta)/2]), unit)
}

func BenchmarkRouter(b *testing.B) {
	ctx := context.Background()
	r := benchRouter(b)
	const id = int64(42)
	t := r.User(id)
	pool, err := pgxpool.New(ctx, shardOf(b, r, t.Shard()).Replicas[0].DSN())
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	const q = "SELECT name FROM users WHERE id = $1"
	var name string
	read := func(i int) {
		if err := t.QueryRow(ctx, q, id).Scan(&name); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("point-read/router-vs-pool", func(b *testing.B) {
		interleave(b, "router/pool", func(int) {
			if err := pool.QueryRow(ctx, q, id).Scan(&name); err != nil {
				b.Fatal(err)
			}
		}, read)
	})

	users := router.NewCache[user](r, "users", cache.Options{})
	load := loadUser(t, id)
	key := "user:42"
	b.Run("cached-read/cached-vs-uncached", func(b *testing.B) {
		interleave(b, "uncached/cached", func(int) {
			if _, err := users.Get(ctx, t, key, load); err != nil {
				b.Fatal(err)
			}
		}, read)
	})
	b.Run("cached-read/hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := users.Get(ctx, t, key, load); err != nil {
				b.Fatal(err)
			}
		}
	})

	scan := pgx.RowToStructByPos[user]
	const recent = "SELECT id, name FROM users ORDER BY id DESC LIMIT 20"
	b.Run("gather/4-shards-vs-1", func(b *testing.B) {
		newest := func(a, b user) int { return cmp.Compare(b.ID, a.ID) }
		interleave(b, "gather/one", func(int) {
			rows, err := t.Query(ctx, recent)
			if err == nil {
				_, err = pgx.CollectRows(rows, scan)
			}
			if err != nil {
				b.Fatal(err)
			}
		}, func(int) {
			if _, err := router.Gather(ctx, r, recent, nil, scan, router.GatherOptions[user]{Compare: newest, Limit: 20}); err != nil {
				b.Fatal(err)
			}
		})
	})

	// What the machine allows: the same query on the four replicas' bare
	// pools at once, against one of them alone.
	var pools []*pgxpool.Pool
	for _, sh := range cluster.Shards() {
		p, err := pgxpool.New(ctx, sh.Replicas[0].DSN())
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		pools = append(pools, p)
	}
	bare := func(p *pgxpool.Pool) error {
		rows, err := p.Query(ctx, recent)
		if err == nil {
			_, err = pgx.CollectRows(rows, scan)
		}
		return err
	}
	b.Run("gather/bare-pools-4-vs-1", func(b *testing.B) {
		interleave(b, "four/one", func(int) {
			if err := bare(pools[0]); err != nil {
				b.Fatal(err)
			}
		}, func(int) {
			errs := make([]error, len(pools))
			var wg sync.WaitGroup
			for i, p := range pools {
				wg.Go(func() { errs[i] = bare(p) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				b.Fatal(err)
			}
		})
	})

	sctx := router.WithSession(ctx, router.NewSession())
	const upd = "UPDATE users SET name = $2 WHERE id = $1"
	b.Run("write/session-vs-plain", func(b *testing.B) {
		interleave(b, "session/plain", func(i int) {
			if _, err := t.Exec(ctx, upd, id, fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		}, func(i int) {
			if _, err := t.Exec(sctx, upd, id, fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		})
	})
}
