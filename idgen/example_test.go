package idgen_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgshard/pgshard/idgen"
)

func ExampleNew() {
	ctx := context.Background()
	// Any PostgreSQL primary that every generator shares will do: here the
	// test cluster's; a service would use its control or first shard's database.
	db, err := pgxpool.New(ctx, cluster.Shards()[0].Primary.DSN())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	g, err := idgen.New(ctx, db, idgen.Options{Table: "example_leases"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close(ctx)
	a, _ := g.Next()
	b, err := g.Next()
	fmt.Println(b > a, idgen.Node(a) == g.Node(), err)
	// Output:
	// true true <nil>
}
