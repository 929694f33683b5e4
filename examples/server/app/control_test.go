package app

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/topology"
)

// A server that follows a topology store (-control) instead of a file:
// the store holds the shared cluster's map with the password as a
// variable, set in this process's environment.
func TestServeFollowingStore(t *testing.T) {
	ctx := context.Background()
	p := cluster.Shards()[0].Primary
	require.NoError(t, p.SuperExec(ctx, "DROP DATABASE IF EXISTS app_control WITH (FORCE)"))
	require.NoError(t, p.SuperExec(ctx, "CREATE DATABASE app_control OWNER pgshard"))
	t.Cleanup(func() { _ = p.SuperExec(context.Background(), "DROP DATABASE IF EXISTS app_control WITH (FORCE)") })
	t.Setenv("APP_TEST_PW", testPassword)
	hide := func(dsn string) string { return strings.Replace(dsn, ":"+testPassword+"@", ":${APP_TEST_PW}@", 1) }
	control := fmt.Sprintf("postgres://pgshard:${APP_TEST_PW}@127.0.0.1:%d/app_control?sslmode=disable", p.Port())

	store, err := topology.Open(ctx, control)
	require.NoError(t, err)
	defer store.Close()
	require.NoError(t, store.Init(ctx))
	m := &topology.Map{}
	for _, sh := range testTopology().Shards {
		s := topology.Shard{Name: sh.Name, Range: sh.Range, Primary: hide(sh.Primary)}
		for _, r := range sh.Replicas {
			s.Replicas = append(s.Replicas, hide(r))
		}
		m.Shards = append(m.Shards, s)
	}
	_, err = store.Apply(ctx, m, topology.ApplyOptions{Reason: "test"})
	require.NoError(t, err)

	serveUntilCancelled(t, "-control", control, "-listen", "127.0.0.1:0", "-log-level", "warn")

	_, err = ParseFlags([]string{"-control", control, "-shards", "3"}, &syncBuffer{})
	require.ErrorContains(t, err, "-control follows a topology store")
}
