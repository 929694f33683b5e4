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

func ExampleLookup_Change() {
	ctx := context.Background()
	r, err := router.Open(ctx, config(cluster))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, email text)")
	r.ExecAll(ctx, "DELETE FROM users WHERE id = 601")
	emails, err := lookup.New(r, lookup.Config{
		Table:    "user_emails",
		OwnerSQL: "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND email = $2)",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	emails.Setup(ctx)
	r.ExecAll(ctx, "DELETE FROM user_emails WHERE key IN ('barbara@example.com', 'liskov@example.com')")
	err = emails.Create(ctx, "barbara@example.com", 601, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO users (id, email) VALUES (601, 'barbara@example.com')")
		return err
	})
	fmt.Println(err)

	// The new email's lookup row first, the user second, the old email's
	// lookup row last. The update fails if the email changed meanwhile.
	setEmail := func(old, new string) error {
		return emails.Change(ctx, old, new, 601, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, "UPDATE users SET email = NULLIF($2, '') WHERE id = 601 AND coalesce(email, '') = $1", old, new)
			if err == nil && tag.RowsAffected() == 0 {
				err = errors.New("the email changed meanwhile")
			}
			return err
		})
	}
	fmt.Println(setEmail("barbara@example.com", "liskov@example.com"))
	_, err = emails.Get(router.WithPrimary(ctx), "barbara@example.com")
	fmt.Println(errors.Is(err, lookup.ErrNotFound))
	id, err := emails.Get(router.WithPrimary(ctx), "liskov@example.com")
	fmt.Println(id, err)
	fmt.Println(setEmail("liskov@example.com", "")) // no email any more
	// Output:
	// <nil>
	// <nil>
	// true
	// 601 <nil>
	// <nil>
}
