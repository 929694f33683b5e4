package pgcluster

import (
	"context"
	"fmt"
	"maps"
)

// Logical returns a copy of o whose servers run with wal_level = logical,
// as a source of logical replication (pgshard reshard) needs, with room
// for a few more replication slots and senders. Settings already in o win.
func (o Options) Logical() Options {
	s := map[string]string{
		"wal_level":             "logical",
		"max_replication_slots": "20",
		"max_wal_senders":       "20",
	}
	maps.Copy(s, o.Settings)
	o.Settings = s
	return o
}

// AddShard starts one more shard, named after the last ("shard2" after
// shard0 and shard1), with replicas streaming replicas, and returns it
// once its primary accepts connections and its replicas have caught up.
// Its servers are like the others (same options, same backend) and Close
// stops them with the rest. AddShard must not run at the same time as
// Shards, Nodes, Node or another AddShard: a cluster grows between test
// steps, not under them.
func (c *Cluster) AddShard(ctx context.Context, replicas int) (Shard, error) {
	if replicas < 0 || replicas > 8 {
		return Shard{}, fmt.Errorf("pgcluster: AddShard: %d replicas: want 0 to 8", replicas)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return Shard{}, ErrClosed
	}
	sh := Shard{Name: fmt.Sprintf("shard%d", len(c.shards)), Replicas: make([]*Node, replicas)}
	err := c.startShard(ctx, &sh)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range append([]*Node{sh.Primary}, sh.Replicas...) {
		if n != nil {
			c.nodes = append(c.nodes, n) // Close stops it, even on failure
		}
	}
	if err != nil {
		return Shard{}, err
	}
	c.shards = append(c.shards, sh)
	return Shard{Name: sh.Name, Primary: sh.Primary, Replicas: append([]*Node(nil), sh.Replicas...)}, nil
}
