package topology_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/topology"
)

// BenchmarkFence measures what a write pays for the fence, as the time
// ratio against the same write without it, both sides alternating in one
// loop (the machine is shared and noisy):
//
//   - trigger-vs-none: the design chosen, a statement-level trigger that
//     compares the connection's map version with a constant, installed
//     once the shard has lost a range. Before that a shard has no trigger
//     and a write pays nothing.
//   - relaxed-vs-none: the same table once RelaxFence has removed the
//     trigger, which it does once every router with an older map has
//     lost its lease: the steady state after a move.
//   - none-vs-none: two tables without the trigger, the measure's own
//     bias and noise.
//   - pipelined-check-vs-none: the alternative, a check statement that
//     reads the fence table sent in the same round trip as the write
//     (one implicit transaction).
func BenchmarkFence(b *testing.B) {
	ctx := context.Background()
	p0 := cluster.Shards()[0].Primary
	for _, stmt := range []string{
		"DROP SCHEMA IF EXISTS pgshard CASCADE",
		"DROP TABLE IF EXISTS bench_plain, bench_fenced, bench_twin",
		"CREATE TABLE bench_twin (id bigint PRIMARY KEY, name text)",
		"INSERT INTO bench_twin VALUES (42, 'x')",
		"ALTER TABLE bench_twin OWNER TO pgshard",
		"CREATE TABLE bench_plain (id bigint PRIMARY KEY, name text)",
		"CREATE TABLE bench_fenced (id bigint PRIMARY KEY, name text)",
		"INSERT INTO bench_plain VALUES (42, 'x')",
		"INSERT INTO bench_fenced VALUES (42, 'x')",
		"ALTER TABLE bench_plain OWNER TO pgshard",
		"ALTER TABLE bench_fenced OWNER TO pgshard",
	} {
		require.NoError(b, p0.SuperExec(ctx, stmt))
	}
	c := connAtB(b, p0, 0)
	const lease = 10 * time.Millisecond // so that the fence may be relaxed at once
	require.NoError(b, topology.InstallFence(ctx, c, topology.FenceState{Shard: "a", Lease: lease}, time.Second))
	require.NoError(b, topology.InstallFence(ctx, c, topology.FenceState{Shard: "a", Range: "-40", Version: 2, Lease: lease}, time.Second))
	require.NoError(b, p0.SuperExec(ctx, "DROP TRIGGER pgshard_fence ON bench_plain"))
	require.NoError(b, p0.SuperExec(ctx, "DROP TRIGGER pgshard_fence ON bench_twin"))
	require.NoError(b, p0.SuperExec(ctx, `CREATE OR REPLACE FUNCTION pgshard.fence_ok(v bigint) RETURNS void LANGUAGE plpgsql AS $f$
		BEGIN
			IF NOT EXISTS (SELECT 1 FROM pgshard.fence WHERE NOT closed AND version <= v) THEN
				RAISE EXCEPTION 'fenced' USING ERRCODE = 'PGS01';
			END IF;
		END $f$`))

	cfg, err := pgxpool.ParseConfig(p0.DSN())
	require.NoError(b, err)
	cfg.ConnConfig.RuntimeParams[topology.VersionParam] = "3"
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	defer pool.Close()

	exec := func(sql string, i int) {
		if _, err := pool.Exec(ctx, sql, int64(42), fmt.Sprint(i)); err != nil {
			b.Fatal(err)
		}
	}
	plain := func(i int) { exec("UPDATE bench_plain SET name = $2 WHERE id = $1", i) }
	b.Run("none-vs-none", func(b *testing.B) { // the two sides' bias, for scale
		interleave(b, "twin/none", plain, func(i int) { exec("UPDATE bench_twin SET name = $2 WHERE id = $1", i) })
	})
	b.Run("trigger-vs-none", func(b *testing.B) {
		interleave(b, "trigger/none", plain, func(i int) { exec("UPDATE bench_fenced SET name = $2 WHERE id = $1", i) })
	})
	b.Run("relaxed-vs-none", func(b *testing.B) {
		time.Sleep(3 * lease)
		_, err := topology.RelaxFence(ctx, c, time.Second)
		require.NoError(b, err)
		st, _, err := topology.ReadFence(ctx, c)
		require.NoError(b, err)
		require.False(b, st.RelaxedAt.IsZero(), "relaxed")
		interleave(b, "relaxed/none", plain, func(i int) { exec("UPDATE bench_fenced SET name = $2 WHERE id = $1", i) })
	})
	b.Run("pipelined-check-vs-none", func(b *testing.B) {
		interleave(b, "pipelined/none", plain, func(i int) {
			batch := &pgx.Batch{}
			batch.Queue("SELECT pgshard.fence_ok($1)", int64(3))
			batch.Queue("UPDATE bench_plain SET name = $2 WHERE id = $1", int64(42), fmt.Sprint(i))
			if err := pool.SendBatch(ctx, batch).Close(); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// interleave runs a and bb alternately and reports time(bb) / time(a).
func interleave(b *testing.B, unit string, a, bb func(i int)) {
	var ta, tb time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		a(i)
		t1 := time.Now()
		bb(i)
		ta += t1.Sub(t0)
		tb += time.Since(t1)
	}
	b.ReportMetric(float64(tb)/float64(ta), unit)
}

func connAtB(b *testing.B, n interface{ DSN() string }, _ int64) *pgx.Conn {
	c, err := pgx.Connect(context.Background(), n.DSN())
	require.NoError(b, err)
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}
