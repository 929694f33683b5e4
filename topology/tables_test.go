package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/topology"
)

func TestDeclaredTables(t *testing.T) {
	ctx := context.Background()
	s := controlDB(t)
	require.NoError(t, s.Init(ctx))
	_, err := s.Apply(ctx, clusterMap(), topology.ApplyOptions{Reason: "tables"})
	require.NoError(t, err)
	for _, sh := range cluster.Shards() {
		require.NoError(t, sh.Primary.SuperExec(ctx, `DROP TABLE IF EXISTS decl_posts, decl_countries, decl_nopk, decl_uuid;
			CREATE TABLE decl_posts (user_id bigint, id bigint, body text, PRIMARY KEY (user_id, id));
			CREATE TABLE decl_countries (code text PRIMARY KEY, name text);
			CREATE TABLE decl_nopk (user_id bigint);
			CREATE TABLE decl_uuid (k uuid PRIMARY KEY)`))
	}
	t.Cleanup(func() {
		for _, sh := range cluster.Shards() {
			_ = sh.Primary.SuperExec(context.Background(), `DROP TABLE IF EXISTS decl_posts, decl_countries, decl_nopk, decl_uuid, decl_only0`)
		}
	})
	require.NoError(t, cluster.Shards()[0].Primary.SuperExec(ctx, `CREATE TABLE decl_only0 (id bigint PRIMARY KEY)`))

	none, err := s.Tables(ctx)
	require.NoError(t, err)
	require.Empty(t, none)

	got, err := s.AddTable(ctx, topology.Table{Name: "decl_posts", Key: "user_id"}, topology.TableOptions{})
	require.NoError(t, err)
	require.Equal(t, "int", got.KeyKind)
	_, err = s.AddTable(ctx, topology.Table{Name: "decl_countries", Reference: true}, topology.TableOptions{})
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		t    topology.Table
		want string
	}{
		{"no such table", topology.Table{Name: "decl_missing", Key: "id"}, `shard a: no table "decl_missing"`},
		{"no such column", topology.Table{Name: "decl_posts", Key: "author"}, `has no column "author"`},
		{"key outside the primary key", topology.Table{Name: "decl_posts", Key: "body"}, "key column body is not part of the primary key (user_id, id)"},
		{"no primary key", topology.Table{Name: "decl_nopk", Key: "user_id"}, "decl_nopk has no primary key"},
		{"unhashable type", topology.Table{Name: "decl_uuid", Key: "k"}, "key column k is of type uuid"},
		{"missing on one shard", topology.Table{Name: "decl_only0", Key: "id"}, `shard b: no table "decl_only0"`},
		{"reference with a key", topology.Table{Name: "decl_countries", Key: "code", Reference: true}, "a reference table has no key column"},
		{"sharded without a key", topology.Table{Name: "decl_posts"}, "name its key column"},
		{"no name", topology.Table{Key: "id"}, "no table name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.AddTable(ctx, tc.t, topology.TableOptions{})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}

	tables, err := s.Tables(ctx)
	require.NoError(t, err)
	require.Len(t, tables, 2)
	require.Equal(t, "decl_countries", tables[0].Name)
	require.True(t, tables[0].Reference)
	require.Equal(t, topology.Table{Name: "decl_posts", Key: "user_id", KeyKind: "int"}, withoutTime(tables[1]))

	removed, err := s.RemoveTable(ctx, "decl_countries")
	require.NoError(t, err)
	require.True(t, removed)
	removed, err = s.RemoveTable(ctx, "decl_countries")
	require.NoError(t, err)
	require.False(t, removed)
}

func withoutTime(t topology.Table) topology.Table {
	t.AddedAt = time.Time{}
	return t
}

func TestWorkflowState(t *testing.T) {
	ctx := context.Background()
	s := controlDB(t)
	type state struct{ Phase string }
	_, err := s.Workflow(ctx, "w", &state{})
	require.ErrorIs(t, err, topology.ErrNoWorkflow)

	rev, err := s.PutWorkflow(ctx, "w", "reshard", 0, state{"copying"})
	require.NoError(t, err)
	require.EqualValues(t, 1, rev)
	_, err = s.PutWorkflow(ctx, "w", "reshard", 0, state{"copying"})
	require.ErrorIs(t, err, topology.ErrConflict, "creating twice")

	rev2, err := s.PutWorkflow(ctx, "w", "reshard", rev, state{"streaming"})
	require.NoError(t, err)
	_, err = s.PutWorkflow(ctx, "w", "reshard", rev, state{"cancelled"})
	require.ErrorIs(t, err, topology.ErrConflict, "a stale revision")

	var got state
	gotRev, err := s.Workflow(ctx, "w", &got)
	require.NoError(t, err)
	require.Equal(t, rev2, gotRev)
	require.Equal(t, "streaming", got.Phase)

	names, err := s.Workflows(ctx, "reshard")
	require.NoError(t, err)
	require.Equal(t, []string{"w"}, names)
	names, err = s.Workflows(ctx, "other")
	require.NoError(t, err)
	require.Empty(t, names)
}
