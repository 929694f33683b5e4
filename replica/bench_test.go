package replica_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgshard/pgshard/replica"
)

// BenchmarkPointRead compares a point read through the Set with the same
// read on a bare pgxpool.Pool of one replica, in the same run. With one
// replica in the set both reach the same server.
func BenchmarkPointRead(b *testing.B) {
	ctx := context.Background()
	sh := cluster.Shards()[0]
	s, err := replica.New(ctx, replica.Config{Name: "bench", Primary: sh.Primary.DSN(), Replicas: []string{sh.Replicas[0].DSN()}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench (id int primary key, v text)"); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Exec(ctx, "INSERT INTO bench SELECT g, 'value ' || g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING"); err != nil {
		b.Fatal(err)
	}
	// The bare pool reads the replica directly: it must have the rows.
	if err := sh.Replicas[0].WaitCaughtUp(ctx, sh.Primary); err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, sh.Replicas[0].DSN())
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	const q = "SELECT v FROM bench WHERE id = $1"
	var v string
	b.Run("pool", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := pool.QueryRow(ctx, q, i%1000+1).Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("set", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := s.QueryRow(ctx, q, i%1000+1).Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The machine is shared and noisy: alternate the two reads within one
	// loop, so that both see the same noise, and report the ratio of their
	// medians, which a descheduled read or a GC pause on one side does not
	// move the way it moves a ratio of sums.
	b.Run("interleaved", func(b *testing.B) {
		var inPool, inSet []time.Duration
		for i := 0; b.Loop(); i++ {
			t0 := time.Now()
			if err := pool.QueryRow(ctx, q, i%1000+1).Scan(&v); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := s.QueryRow(ctx, q, i%1000+1).Scan(&v); err != nil {
				b.Fatal(err)
			}
			inPool = append(inPool, t1.Sub(t0))
			inSet = append(inSet, time.Since(t1))
		}
		b.ReportMetric(float64(median(inSet))/float64(median(inPool)), "set/pool")
	})
}

// median returns the middle of d, which it sorts.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}
