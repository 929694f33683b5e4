package router_test

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/router"
)

type post struct {
	UserID int64
	ID     int64
}

func TestGatherTopN(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	schema(t, r)
	if err := r.ExecAll(ctx, "TRUNCATE posts"); err != nil {
		t.Fatal(err)
	}
	for u := int64(1); u <= 200; u++ {
		if _, err := r.User(u).Exec(ctx, "INSERT INTO posts SELECT $1::bigint, $1::bigint * 1000 + g, 'p' FROM generate_series(1, 5) g", u); err != nil {
			t.Fatal(err)
		}
	}
	scan := pgx.RowToStructByPos[post]
	newest := func(a, b post) int { return cmp.Compare(b.ID, a.ID) }
	got, err := router.Gather(ctx, r, "SELECT user_id, id FROM posts ORDER BY id DESC LIMIT 50", nil, scan,
		router.GatherOptions[post]{Compare: newest, Limit: 50, Primary: true})
	if err != nil {
		t.Fatal(err)
	}
	// The same question asked of the union of every shard's rows.
	all, err := router.Gather(ctx, r, "SELECT user_id, id FROM posts", nil, scan, router.GatherOptions[post]{Primary: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1000 {
		t.Fatalf("union holds %d posts, want 1000", len(all))
	}
	slices.SortFunc(all, func(a, b post) int { return int(b.ID - a.ID) })
	if !slices.Equal(got, all[:50]) {
		t.Errorf("Gather top 50 = %v...\nwant %v...", got[:3], all[:3])
	}

	// One shard's primary stopped: the call fails naming it, and Partial
	// returns the others' rows naming it.
	victim := cluster.Shards()[2]
	name := r.Map().Shards()[2]
	if err := victim.Primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	defer victim.Primary.Start(context.Background())
	_, err = router.Gather(ctx, r, "SELECT user_id, id FROM posts", nil, scan, router.GatherOptions[post]{Primary: true})
	var me *router.MultiError
	if !errors.As(err, &me) || !slices.Equal(me.Shards(), []string{name}) {
		t.Fatalf("Gather with shard %s down: %v, want a MultiError naming only it", name, err)
	}
	part, err := router.Gather(ctx, r, "SELECT user_id, id FROM posts", nil, scan, router.GatherOptions[post]{Primary: true, Partial: true})
	var pe *router.PartialError
	if !errors.As(err, &pe) || !slices.Equal(pe.Shards(), []string{name}) || !strings.Contains(err.Error(), name) {
		t.Fatalf("partial Gather: %v, want a PartialError naming %s", err, name)
	}
	if len(part) == 0 || len(part) >= 1000 {
		t.Errorf("partial Gather returned %d rows, want the other shards' rows", len(part))
	}
	err = r.ExecAll(ctx, "SELECT 1")
	if !errors.As(err, &me) || !slices.Equal(me.Shards(), []string{name}) {
		t.Fatalf("ExecAll with shard %s down: %v, want a MultiError naming only it", name, err)
	}
}
