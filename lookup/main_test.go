package lookup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/internal/pgcluster"
	"github.com/pgshard/pgshard/lookup"
	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
)

// cluster is two shards, a primary each, shared by the package's tests.
var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	if cfg := os.Getenv("LOOKUP_CHILD"); cfg != "" {
		os.Exit(child(cfg))
	}
	os.Exit(pgcluster.RunMain(m, pgcluster.Options{Shards: 2}, &cluster))
}

func config(c *pgcluster.Cluster) router.Config {
	ranges, err := (shard.Range{}).Split(len(c.Shards()))
	if err != nil {
		panic(err)
	}
	cfg := router.Config{Replica: replica.Options{CheckInterval: 50 * time.Millisecond, CheckTimeout: time.Second, ConnectTimeout: 10 * time.Second}}
	for i, sh := range c.Shards() {
		cfg.Shards = append(cfg.Shards, router.ShardConfig{Range: ranges[i].String(), Primary: sh.Primary.DSN()})
	}
	return cfg
}

func open(t testing.TB) *router.Router {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := router.Open(ctx, config(cluster))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// emails is the lookup the tests use: users sharded by ID, found by email.
func emails(t testing.TB, r *router.Router) *lookup.Lookup {
	t.Helper()
	l, err := lookup.New(r, lookup.Config{Table: "user_emails",
		OwnerSQL: "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND email = $2)"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, email text)"); err != nil {
		t.Fatal(err)
	}
	if err := l.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	return l
}

func insertUser(ctx context.Context, id int64, email string) func(pgx.Tx) error {
	return func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO users (id, email) VALUES ($1, $2)", id, email)
		return err
	}
}

// child is a process that creates a user with an email and is killed
// between the lookup row and the owner row: its owner transaction is open,
// and it waits there forever.
func child(cfgJSON string) int {
	ctx := context.Background()
	var cfg router.Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg.Shards); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r, err := router.Open(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := lookup.New(r, lookup.Config{Table: "user_emails",
		OwnerSQL: "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND email = $2)"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var id int64
	fmt.Sscan(os.Getenv("LOOKUP_ID"), &id)
	err = l.Create(ctx, os.Getenv("LOOKUP_KEY"), id, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO users (id, email) VALUES ($1, $2)", id, os.Getenv("LOOKUP_KEY")); err != nil {
			return err
		}
		os.WriteFile(os.Getenv("LOOKUP_READY"), nil, 0o600)
		select {} // killed here, between the two writes' commits
	})
	fmt.Fprintln(os.Stderr, "child: Create returned", err)
	return 1
}
