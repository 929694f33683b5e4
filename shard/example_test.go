package shard_test

import (
	"fmt"

	"github.com/pgshard/pgshard/shard"
)

func Example() {
	m, err := shard.Uniform("users-a", "users-b")
	if err != nil {
		panic(err)
	}
	for _, name := range m.Shards() {
		r, _ := m.Range(name)
		fmt.Printf("%s owns %s\n", name, r)
	}
	id := shard.HashInt64(42)
	fmt.Printf("user 42 has keyspace ID %#016x and lives on %s\n", uint64(id), m.Lookup(id))
	// Output:
	// users-a owns -80
	// users-b owns 80-
	// user 42 has keyspace ID 0xa2c396223f8bdbdf and lives on users-b
}

func ExampleParseRange() {
	r, err := shard.ParseRange("40-80")
	if err != nil {
		panic(err)
	}
	fmt.Println(r, r.Contains(0x4000000000000000), r.Contains(0x8000000000000000))
	_, err = shard.ParseRange("4-80")
	fmt.Println(err)
	// Output:
	// 40-80 true false
	// shard: invalid key range "4-80": start: 1 hex digits, want an even number
}

func ExampleNewMap() {
	_, err := shard.NewMap(map[string]shard.Range{
		"a": {End: 0x4000000000000000},
		"b": {Start: 0x8000000000000000},
	})
	fmt.Println(err)
	// Output:
	// shard: invalid shard map: gap 40-80 between shards "a" (-40) and "b" (80-)
}
