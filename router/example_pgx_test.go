package router_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/router"
)

func ExampleTarget_BeginTx() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS accounts (user_id bigint PRIMARY KEY, balance int NOT NULL)")
	r.User(5).Exec(ctx, "INSERT INTO accounts VALUES (5, 100) ON CONFLICT (user_id) DO UPDATE SET balance = 100")

	tx, err := r.User(5).BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tx.Rollback(ctx) // harmless after Commit
	var balance int
	tx.QueryRow(ctx, "UPDATE accounts SET balance = balance - 30 WHERE user_id = 5 RETURNING balance").Scan(&balance)
	if err := router.Invalidate(ctx, tx, "account:5"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(balance, tx.Commit(ctx))

	// A read-only transaction may run on a replica within the lag bound.
	err = r.User(5).BeginTxFunc(router.WithPrimary(ctx), pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT balance FROM accounts WHERE user_id = 5").Scan(&balance)
	})
	fmt.Println(balance, err)
	// Output:
	// 70 <nil>
	// 70 <nil>
}

func ExampleTarget_SendBatch() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS tags (user_id bigint, tag text)")
	r.User(8).Exec(ctx, "DELETE FROM tags WHERE user_id = 8")

	sess := router.NewSession()
	sctx := router.WithSession(ctx, sess)
	b := &pgx.Batch{}
	for _, tag := range []string{"go", "postgres", "sharding"} {
		b.Queue("INSERT INTO tags VALUES (8, $1)", tag)
	}
	// One round trip, one implicit transaction; Close records the session's position.
	if err := r.User(8).SendBatch(sctx, b).Close(); err != nil {
		fmt.Println(err)
		return
	}
	var n int
	err = r.User(8).QueryRow(sctx, "SELECT count(*) FROM tags WHERE user_id = 8").Scan(&n)
	fmt.Println(n, err)
	// Output:
	// 3 <nil>
}

func ExampleTarget_CopyFrom() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS events (user_id bigint, seq int)")
	r.User(3).Exec(ctx, "DELETE FROM events WHERE user_id = 3")

	rows := [][]any{{3, 1}, {3, 2}, {3, 3}}
	n, err := r.User(3).CopyFrom(ctx, pgx.Identifier{"events"}, []string{"user_id", "seq"}, pgx.CopyFromRows(rows))
	fmt.Println(n, err)
	// Output:
	// 3 <nil>
}

func ExampleRouter_Ping() {
	ctx := context.Background()
	r, err := router.Open(ctx, exampleConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	fmt.Println(r.Ping(ctx))
	// Output:
	// <nil>
}
