package router_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/cache"
	"github.com/pgshard/pgshard/router"
)

// exampleConfig describes the test cluster's four shards. A service builds
// the same from its own configuration:
//
//	router.Config{Shards: []router.ShardConfig{
//		{Range: "-80", Primary: "postgres://app:pw@db-a:5432/app", Replicas: []string{"postgres://app:pw@db-a1:5432/app"}},
//		{Range: "80-", Primary: "postgres://app:pw@db-b:5432/app", Replicas: []string{"postgres://app:pw@db-b1:5432/app"}},
//	}}
func exampleConfig() router.Config {
	cfg := config(nil, cluster)
	cfg.Cache = cache.Options{Capacity: 10_000, TTL: time.Minute}
	return cfg
}

func ExampleOpen() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	for _, s := range r.Stats().Shards {
		fmt.Println(s.Name, "primary up:", s.Replica.Primary != "")
	}
	// Output:
	// -40 primary up: true
	// 40-80 primary up: true
	// 80-c0 primary up: true
	// c0- primary up: true
}

func ExampleTarget_Query() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text NOT NULL)")

	user := r.User(42) // the shard that owns user 42
	if _, err := user.Exec(ctx, "INSERT INTO users VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $2", 42, "Ada"); err != nil {
		fmt.Println(err)
		return
	}
	// Read the primary here: a replica may not have replayed the insert yet.
	// A Session does this only when needed (see the Session example).
	rows, err := user.Query(router.WithPrimary(ctx), "SELECT name FROM users WHERE id = $1", 42)
	if err != nil {
		fmt.Println(err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	fmt.Println(user.Shard(), names, err)
	// Output:
	// 80-c0 [Ada] <nil>
}

func ExampleSession() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text NOT NULL)")

	// Request 1 writes, and hands the client a token.
	sess := router.NewSession()
	r.User(7).Exec(router.WithSession(ctx, sess), "INSERT INTO users VALUES (7, 'Grace') ON CONFLICT (id) DO UPDATE SET name = 'Grace'")
	token := sess.Token() // e.g. in an X-Consistency-Token header

	// Request 2, perhaps on another server, reads its own write: from a
	// replica that has replayed it, or else from the primary.
	sess2, err := router.ParseSession(token)
	if err != nil {
		fmt.Println(err)
		return
	}
	var name string
	err = r.User(7).QueryRow(router.WithSession(ctx, sess2), "SELECT name FROM users WHERE id = 7").Scan(&name)
	fmt.Println(name, err)
	// Output:
	// Grace <nil>
}

func ExampleInvalidate() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text NOT NULL)")
	r.User(9).Exec(ctx, "INSERT INTO users VALUES (9, 'Edsger') ON CONFLICT (id) DO UPDATE SET name = 'Edsger'")

	names := router.NewCache[string](r, "user-names", cache.Options{})
	load := func(ctx context.Context) (string, error) {
		var name string
		err := r.User(9).QueryRow(ctx, "SELECT name FROM users WHERE id = 9").Scan(&name)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", cache.ErrNotFound // remembered for NegativeTTL
		}
		return name, err
	}
	// The write and its invalidation commit together; every process using
	// these shards drops "user:9" from its caches.
	err = r.User(9).Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE users SET name = 'E. W. Dijkstra' WHERE id = 9"); err != nil {
			return err
		}
		return router.Invalidate(ctx, tx, "user:9")
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	name, err := names.Get(ctx, r.User(9), "user:9", load)
	fmt.Println(name, err)
	// Output:
	// E. W. Dijkstra <nil>
}

func ExampleGather() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS scores (user_id bigint PRIMARY KEY, score int)")
	r.ExecAll(ctx, "TRUNCATE scores")
	for id := int64(1); id <= 40; id++ {
		r.User(id).Exec(ctx, "INSERT INTO scores VALUES ($1, $2)", id, id*10)
	}
	type score struct {
		UserID int64
		Score  int
	}
	// Each shard returns its own top 3; Gather merges them into the global top 3.
	top, err := router.Gather(ctx, r, "SELECT user_id, score FROM scores ORDER BY score DESC LIMIT 3", nil,
		pgx.RowToStructByPos[score], router.GatherOptions[score]{
			Compare: func(a, b score) int { return cmp.Compare(b.Score, a.Score) },
			Limit:   3,
			Primary: true,
		})
	fmt.Println(top, err)
	// Output:
	// [{40 400} {39 390} {38 380}] <nil>
}
