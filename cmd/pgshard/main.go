// Command pgshard is the operator's tool for pgshard: it shows and
// changes the shard map kept in the topology store, declares the tables
// that resharding moves, and runs resharding workflows.
//
//	pgshard topology init                       create the store's schema in the control database
//	pgshard topology show [-o json|yaml]        the newest map
//	pgshard topology history [-n N] [-o json]   the versions, newest first
//	pgshard topology apply FILE                 store FILE's map as the next version (fencing shards that lose ranges)
//	pgshard topology add-replica SHARD DSN
//	pgshard topology remove-replica SHARD NODE
//	pgshard topology set-primary SHARD NODE     record a switchover: NODE (a replica) becomes the primary
//	pgshard topology set-state SHARD serving|fenced
//	pgshard schema add-table TABLE --key COLUMN | --reference
//	pgshard schema remove-table TABLE
//	pgshard schema tables
//	pgshard reshard create NAME --source RANGE --target RANGE=DSN ...
//	pgshard reshard run | status | verify | switch-writes | reverse | complete | cancel NAME
//
// The control database is named by --control or $PGSHARD_CONTROL; its DSN
// and the map's may name passwords as ${VAR}. Every command takes --help;
// changes take --dry-run, --reason and --by. The exit status is 0 on
// success, 1 when the command failed, 2 when it was used wrongly.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}
