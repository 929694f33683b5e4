package pgcluster_test

import (
	"context"
	"fmt"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

func ExampleStart() {
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Shards: 2, Replicas: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	for _, sh := range c.Shards() {
		fmt.Println(sh.Name, sh.Primary.Name(), sh.Replicas[0].Name())
	}
	// Output:
	// shard0 shard0-primary shard0-replica1
	// shard1 shard1-primary shard1-replica1
}
