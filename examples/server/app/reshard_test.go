package app

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/reshard"
	"github.com/pgshard/pgshard/topology"
)

// The dashboard lists the store's resharding workflows with what their
// servers say (here: the slot is missing, a warning).
func TestDashboardReshardWorkflows(t *testing.T) {
	ctx := context.Background()
	p := cluster.Shards()[0].Primary
	require.NoError(t, p.SuperExec(ctx, "DROP DATABASE IF EXISTS app_reshard WITH (FORCE)"))
	require.NoError(t, p.SuperExec(ctx, "CREATE DATABASE app_reshard OWNER pgshard"))
	t.Cleanup(func() { _ = p.SuperExec(context.Background(), "DROP DATABASE IF EXISTS app_reshard WITH (FORCE)") })
	t.Setenv("APP_TEST_PW", testPassword)
	store, err := topology.Open(ctx, fmt.Sprintf("postgres://pgshard:${APP_TEST_PW}@127.0.0.1:%d/app_reshard?sslmode=disable", p.Port()))
	require.NoError(t, err)
	defer store.Close()

	s := &Server{opts: Options{Store: store}, red: NewRedactor(testTopology())}
	require.Empty(t, s.reshardDocs(ctx), "no workflows yet")
	s.reshard = reshardCache{}

	node := fmt.Sprintf("postgres://pgshard:${APP_TEST_PW}@127.0.0.1:%d/pgshard?sslmode=disable", p.Port())
	_, err = store.PutWorkflow(ctx, "split", "reshard", 0, reshard.State{Name: "split", Phase: reshard.PhaseStreaming,
		Source: reshard.Source{Shard: "shard0", Range: "-80", Primary: node}, Slot: "pgshard_reshard_split",
		Targets: []reshard.Target{{Name: "-40", Range: "-40", Primary: node}}, Copied: map[string]int64{"users": 42}})
	require.NoError(t, err)
	docs := s.reshardDocs(ctx)
	require.Len(t, docs, 1)
	require.Equal(t, "split", docs[0].Name)
	require.Equal(t, "streaming", docs[0].Phase)
	require.Equal(t, "shard0 (-80)", docs[0].Source)
	require.Equal(t, []string{"-40 (-40)"}, docs[0].Targets)
	require.EqualValues(t, 42, docs[0].Copied["users"])
	require.Contains(t, fmt.Sprint(docs[0].Warnings), "the slot pgshard_reshard_split is gone from the source")
}
