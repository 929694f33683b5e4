package router_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// The store names passwords as a variable; these tests look it up here
// rather than in the environment.
func lookupPW(name string) (string, bool) {
	if name == "PGSHARD_TEST_PASSWORD" {
		return "pgshard", true
	}
	return "", false
}

func storeDSN(n *pgcluster.Node, db string) string {
	return fmt.Sprintf("postgres://pgshard:${PGSHARD_TEST_PASSWORD}@127.0.0.1:%d/%s?sslmode=disable", n.Port(), db)
}

var ctlSeq atomic.Int64

// controlStore makes a control database on shard0's server, and removes
// it and every fence at the end of the test.
func controlStore(t *testing.T) (*topology.Store, string) {
	t.Helper()
	t.Setenv("PGSHARD_TEST_PASSWORD", "pgshard")
	return controlStoreB(t)
}

func controlStoreB(t testing.TB) (*topology.Store, string) {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("ctl_%d_%d", os.Getpid(), ctlSeq.Add(1))
	p := cluster.Shards()[0].Primary
	require.NoError(t, p.SuperExec(ctx, "CREATE DATABASE "+name+" OWNER pgshard"))
	s, err := topology.Open(ctx, fmt.Sprintf("postgres://pgshard:pgshard@127.0.0.1:%d/%s?sslmode=disable", p.Port(), name))
	require.NoError(t, err)
	require.NoError(t, s.Init(ctx))
	t.Cleanup(func() {
		s.Close()
		ctx := context.Background()
		_ = p.SuperExec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
		for _, sh := range cluster.Shards() {
			_ = sh.Primary.SuperExec(ctx, "DROP SCHEMA IF EXISTS pgshard CASCADE")
		}
	})
	return s, name
}

// storeMap is the cluster as a stored map: shards a, b, c, d with equal
// ranges, in order.
func storeMap() *topology.Map {
	names := []string{"a", "b", "c", "d"}
	ranges, _ := (shard.Range{}).Split(4)
	m := &topology.Map{}
	for i, sh := range cluster.Shards() {
		s := topology.Shard{Name: names[i], Range: ranges[i].String(), Primary: storeDSN(sh.Primary, "pgshard")}
		for _, rep := range sh.Replicas {
			s.Replicas = append(s.Replicas, storeDSN(rep, "pgshard"))
		}
		m.Shards = append(m.Shards, s)
	}
	return m
}

func apply(t *testing.T, s *topology.Store, m *topology.Map, why string) int64 {
	t.Helper()
	plan, err := s.Apply(context.Background(), m, topology.ApplyOptions{Reason: why, Lookup: lookupPW})
	require.NoError(t, err)
	return plan.To.Version
}

func applyOpts(why string) topology.ApplyOptions {
	return topology.ApplyOptions{Reason: why, Lookup: lookupPW}
}

func openStoreB(t testing.TB, s *topology.Store) *router.Router {
	t.Helper()
	return open(t, router.Config{Store: s, Replica: fast, Lookup: lookupPW})
}

func openStore(t *testing.T, s *topology.Store, edit func(*router.Config)) *router.Router {
	t.Helper()
	cfg := router.Config{Store: s, Replica: fast, PollInterval: 200 * time.Millisecond, Lookup: lookupPW}
	if edit != nil {
		edit(&cfg)
	}
	return open(t, cfg)
}

// userIn returns a user ID whose keyspace ID lies in r.
func userIn(t *testing.T, r shard.Range) int64 {
	for id := int64(1); id < 1e6; id++ {
		if r.Contains(shard.HashInt64(id)) {
			return id
		}
	}
	require.FailNow(t, "no user in range")
	return 0
}

// rowOn says whether the row of id is in fence_rows on node n.
func rowOn(t *testing.T, n *pgcluster.Node, id int64) bool {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, n.DSN())
	require.NoError(t, err)
	defer c.Close(ctx)
	var found bool
	require.NoError(t, c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM fence_rows WHERE id = $1)", id).Scan(&found))
	return found
}

func TestFollowFencedRange(t *testing.T) {
	ctx := context.Background()
	s, _ := controlStore(t)
	m := storeMap()
	apply(t, s, m, "four shards")
	blocked := openStore(t, s, func(c *router.Config) { c.FenceWait = time.Second })
	other := openStore(t, s, nil)
	require.Equal(t, int64(1), blocked.Stats().Map.Version)
	require.NoError(t, blocked.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS fence_rows (id bigint PRIMARY KEY, v text)"))
	require.NoError(t, blocked.ExecAll(ctx, "TRUNCATE fence_rows"))
	const ins = "INSERT INTO fence_rows VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = $2"

	moving := shard.Range{Start: 0x20 << 56, End: 0x40 << 56}
	id := userIn(t, moving)
	early := blocked.User(id) // chosen on the old map, used after the change
	require.Equal(t, "a", early.Shard())

	router.HoldMapUpdates(blocked, true)
	m.Shards[0].Range, m.Shards[1].Range = "-20", "20-80"
	require.Equal(t, int64(2), apply(t, s, m, "move 20-40 from a to b"))

	_, err := early.Exec(ctx, ins, id, "blocked")
	require.ErrorIs(t, err, topology.ErrFenced, "a router that cannot hear the change must not write")
	err = blocked.User(id).Tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, ins, id, "blocked tx")
		return err
	})
	require.ErrorIs(t, err, topology.ErrFenced)
	batch := &pgx.Batch{}
	batch.Queue(ins, id, "blocked batch")
	err = early.SendBatch(ctx, batch).Close()
	require.ErrorIs(t, err, topology.ErrFenced, "a batch is not retried, but fails as fenced")
	require.False(t, rowOn(t, cluster.Shards()[0].Primary, id), "nothing committed on the fenced range")
	require.False(t, rowOn(t, cluster.Shards()[1].Primary, id))

	eventually(t, 30*time.Second, "the other router serves version 2", func() bool { return other.Stats().Map.Version == 2 })
	_, err = other.User(id).Exec(ctx, ins, id, "other")
	require.NoError(t, err)

	// Its reads follow the fence too: once it reads the fence of a, the
	// router, still on version 1, stops reading a (the range moved).
	eventually(t, 30*time.Second, "the blocked router holds reads of a", func() bool {
		var v string
		err := blocked.User(id).QueryRow(ctx, "SELECT v FROM fence_rows WHERE id = $1", id).Scan(&v)
		return errors.Is(err, topology.ErrFenced)
	})
	_, err = early.Query(ctx, "SELECT v FROM fence_rows WHERE id = $1", id)
	require.ErrorIs(t, err, topology.ErrFenced)

	router.HoldMapUpdates(blocked, false)
	// Its FenceWait is short, for the refusals above; on a loaded machine
	// building the new map's sets can take longer.
	eventually(t, 30*time.Second, "the unblocked router serves version 2", func() bool { return blocked.Stats().Map.Version == 2 })
	_, err = early.Exec(ctx, ins, id, "unblocked")
	require.NoError(t, err, "after the fence the write goes to the new owner")
	require.True(t, rowOn(t, cluster.Shards()[1].Primary, id))
	require.False(t, rowOn(t, cluster.Shards()[0].Primary, id))
	st := blocked.Stats().Map
	require.Equal(t, int64(2), st.Version)
	require.True(t, st.Following)
	require.Equal(t, "b", blocked.User(id).Shard())
	var v string
	require.NoError(t, early.QueryRow(router.WithPrimary(ctx), "SELECT v FROM fence_rows WHERE id = $1", id).Scan(&v))
	require.Equal(t, "unblocked", v, "a read through the old target goes to the new owner")
}

func TestFollowControlDown(t *testing.T) {
	ctx := context.Background()
	s, db := controlStore(t)
	apply(t, s, storeMap(), "four shards")
	r := openStore(t, s, nil)
	p := cluster.Shards()[0].Primary
	require.NoError(t, p.SuperExec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false"))
	require.NoError(t, p.SuperExec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db))
	eventually(t, 30*time.Second, "Stats says the store is away", func() bool { return r.Stats().Map.ControlError != "" })
	st := r.Stats().Map
	require.Equal(t, int64(1), st.Version)
	require.False(t, st.Listening)

	require.NoError(t, r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS fence_rows (id bigint PRIMARY KEY, v text)"))
	for id := int64(1); id <= 20; id++ {
		_, err := r.User(id).Exec(ctx, "INSERT INTO fence_rows VALUES ($1, 'x') ON CONFLICT (id) DO NOTHING", id)
		require.NoError(t, err, "writes go on with the store away")
		var v string
		require.NoError(t, r.User(id).QueryRow(router.WithPrimary(ctx), "SELECT v FROM fence_rows WHERE id = $1", id).Scan(&v))
	}

	require.NoError(t, p.SuperExec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true"))
	apply(t, s, storeMap(), "same shards, new version")
	eventually(t, 30*time.Second, "back on the store", func() bool {
		st := r.Stats().Map
		return st.ControlError == "" && st.Version == 2 && st.Listening
	})
}

func TestFollowReplicasUnderLoad(t *testing.T) {
	ctx := context.Background()
	s, _ := controlStore(t)
	m := storeMap()
	apply(t, s, m, "four shards")
	r := openStore(t, s, nil)
	require.NoError(t, r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS fence_rows (id bigint PRIMARY KEY, v text)"))

	var ops, failures atomic.Int64
	var firstErr atomic.Pointer[error]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := int64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := int64(w)*1_000_000 + i%500
				_, err := r.User(id).Exec(ctx, "INSERT INTO fence_rows VALUES ($1, 'x') ON CONFLICT (id) DO UPDATE SET v = 'y'", id)
				if err == nil {
					var v string
					err = r.User(id).QueryRow(ctx, "SELECT v FROM fence_rows WHERE id = $1", id).Scan(&v)
					if errors.Is(err, pgx.ErrNoRows) {
						err = nil // a replica within the lag bound may not have it yet
					}
				}
				ops.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wait := func(v int64) {
		eventually(t, 30*time.Second, fmt.Sprintf("version %d", v), func() bool { return r.Stats().Map.Version == v })
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	rep := m.Shards[0].Replicas[0]
	require.NoError(t, m.RemoveReplica("a", rep))
	wait(apply(t, s, m, "remove a's replica"))
	require.Len(t, r.Stats().Shards[0].Replica.Nodes, 1)
	require.NoError(t, m.AddReplica("a", rep))
	wait(apply(t, s, m, "add it back"))
	require.Len(t, r.Stats().Shards[0].Replica.Nodes, 2)
	close(stop)
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		require.NoError(t, *p, "%d of %d operations failed; the first", failures.Load(), ops.Load())
	}
	require.Positive(t, ops.Load())
}

// TestFollowSessionAcrossMove: a session wrote a user's row on its old
// shard; the range moves (its rows copied to the new owner, whose replica
// has not replayed the copy yet). The session's read, routed by the new
// map, must see the row: it goes to a node past the new owner's cutover.
func TestFollowSessionAcrossMove(t *testing.T) {
	ctx := context.Background()
	s, _ := controlStore(t)
	m := storeMap()
	apply(t, s, m, "four shards")
	slow := fast
	slow.MaxLag = time.Minute // the paused replica stays in rotation
	r := openStore(t, s, func(c *router.Config) { c.Replica = slow })
	require.NoError(t, r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS fence_rows (id bigint PRIMARY KEY, v text)"))
	id := userIn(t, shard.Range{Start: 0x20 << 56, End: 0x40 << 56})
	sess := router.NewSession()
	sctx := router.WithSession(ctx, sess)
	_, err := r.User(id).Exec(sctx, "INSERT INTO fence_rows VALUES ($1, 'mine') ON CONFLICT (id) DO UPDATE SET v = 'mine'", id)
	require.NoError(t, err)
	token := sess.Token()

	b := cluster.Shards()[1]
	require.NoError(t, b.Replicas[0].WaitCaughtUp(ctx, b.Primary))
	require.NoError(t, b.Replicas[0].PauseReplay(ctx))
	t.Cleanup(func() { _ = b.Replicas[0].ResumeReplay(context.Background()) })
	require.NoError(t, b.Primary.SuperExec(ctx, "INSERT INTO fence_rows VALUES ($1, 'mine') ON CONFLICT (id) DO UPDATE SET v = 'mine'", id))

	m.Shards[0].Range, m.Shards[1].Range = "-20", "20-80"
	v := apply(t, s, m, "move 20-40 from a to b")
	eventually(t, 30*time.Second, "the router serves the move", func() bool { return r.Stats().Map.Version == v })

	again, err := router.ParseSession(token)
	require.NoError(t, err)
	var got string
	err = r.User(id).QueryRow(router.WithSession(ctx, again), "SELECT v FROM fence_rows WHERE id = $1", id).Scan(&got)
	require.NoError(t, err, "the session's write is visible on the new owner")
	require.Equal(t, "mine", got)
	require.Equal(t, "b", r.User(id).Shard())
}
