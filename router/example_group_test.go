package router_test

import (
	"cmp"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/router"
)

func ExampleRouter_Group() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	// Each shard's users, so that one query per shard reads them all.
	for _, g := range r.Group([]int64{1, 2, 3, 4, 5, 6}) {
		fmt.Println(g.Target.Shard(), g.IDs)
	}
	// Output:
	// -40 [3 6]
	// 80-c0 [1]
	// c0- [2 4 5]
}

func ExampleGatherGroups() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text NOT NULL)")
	for id, name := range map[int64]string{11: "Ada", 12: "Grace", 13: "Edsger", 14: "Barbara"} {
		r.User(id).Exec(ctx, "INSERT INTO users VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $2", id, name)
	}
	type user struct {
		ID   int64
		Name string
	}
	// The rows of many users in one call: one query per shard, with that
	// shard's IDs as $1, merged in ID order.
	users, err := router.GatherGroups(ctx, r, r.Group([]int64{14, 11, 13, 12}),
		"SELECT id, name FROM users WHERE id = ANY($1) ORDER BY id", pgx.RowToStructByPos[user],
		router.GatherOptions[user]{Compare: func(a, b user) int { return cmp.Compare(a.ID, b.ID) }, Primary: true})
	fmt.Println(users, err)
	// Output:
	// [{11 Ada} {12 Grace} {13 Edsger} {14 Barbara}] <nil>
}
