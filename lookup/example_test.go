package lookup_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/lookup"
	"github.com/pgshard/pgshard/router"
)

func Example() {
	ctx := context.Background()
	r, err := router.Open(ctx, config(cluster))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, email text)")
	r.ExecAll(ctx, "DELETE FROM users WHERE id IN (501, 502)")
	emails, err := lookup.New(r, lookup.Config{
		Table:    "user_emails",
		OwnerSQL: "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND email = $2)",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	emails.Setup(ctx)
	r.ExecAll(ctx, "DELETE FROM user_emails WHERE key = 'edsger@example.com'")

	create := func(id int64, email string) error {
		return emails.Create(ctx, email, id, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO users (id, email) VALUES ($1, $2)", id, email)
			return err
		})
	}
	fmt.Println(create(501, "edsger@example.com"))
	err = create(502, "edsger@example.com")
	fmt.Println(errors.Is(err, lookup.ErrDuplicate))
	id, err := emails.Get(router.WithPrimary(ctx), "edsger@example.com")
	fmt.Println(id, err)
	// Output:
	// <nil>
	// true
	// 501 <nil>
}
