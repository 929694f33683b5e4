package topology_test

import (
	"fmt"

	"github.com/pgshard/pgshard/topology"
)

func ExampleParseFile() {
	file := `
shards:
  - name: a
    range: "-80"
    primary: postgres://app:${PG_PASSWORD}@10.0.0.1:5432/app
    replicas: ["postgres://app:${PG_PASSWORD}@10.0.0.2:5432/app"]
  - name: b
    range: "80-"
    primary: host=10.0.0.3 dbname=app user=app passfile=/etc/pgshard/pgpass
`
	m, err := topology.ParseFile("map.yaml", []byte(file))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, sh := range m.Shards {
		fmt.Println(sh.Name, sh.Range, sh.State, len(sh.Replicas))
	}
	// Output:
	// a -80 serving 1
	// b 80- serving 0
}

func ExampleMap_Validate() {
	m := &topology.Map{Shards: []topology.Shard{
		{Name: "a", Range: "-80", Primary: "host=10.0.0.1 dbname=app"},
		{Name: "b", Range: "90-", Primary: "host=10.0.0.3 dbname=app password=hunter2"},
	}}
	fmt.Println(m.Validate())
	m.Shards[1].Primary = "host=10.0.0.3 dbname=app password=$PG_PASSWORD"
	fmt.Println(m.Validate())
	// Output:
	// topology: invalid map: shards[1] (b).primary: holds a literal password: name it as ${VAR} (an environment variable) or use passfile=/path
	// topology: invalid map: shard: invalid shard map: gap 80-90 between shards "a" (-80) and "b" (90-)
}

func ExampleIsFenced() {
	// A router's write refused by a shard's fence, as pgx returns it,
	// says which map version the router needs.
	var err error = &topology.FenceError{Version: 7}
	if fe, ok := topology.IsFenced(err); ok {
		fmt.Println("reload to at least version", fe.Version)
	}
	// Output:
	// reload to at least version 7
}
