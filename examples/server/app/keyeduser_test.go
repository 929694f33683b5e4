package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// A user created under an Idempotency-Key while a reshard splits its
// shard: the map changes between the ID's draw and its transaction, and
// the split puts the drawn ID and the key on different shards. The router
// runs the transaction again on the key's new shard; the user must still
// land on the shard that owns its ID (a new ID, if need be), where GET
// /users/{id} and the email lookup find it.
func TestKeyedCreateAcrossSplit(t *testing.T) {
	ctx := context.Background()
	t.Setenv("APP_TEST_PW", testPassword)
	// A database of its own on each primary, and the store in another:
	// the store's schema pgshard in a shard's database would come first
	// in the role pgshard's search_path, and the server's tables there
	// would not be fenced (see package topology).
	createDB := func(i int, db string) (dsn, plain string) {
		p := cluster.Shards()[i].Primary
		require.NoError(t, p.SuperExec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"))
		require.NoError(t, p.SuperExec(ctx, "CREATE DATABASE "+db+" OWNER pgshard"))
		t.Cleanup(func() { _ = p.SuperExec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
		const url = "postgres://pgshard:%s@127.0.0.1:%d/%s?sslmode=disable"
		return fmt.Sprintf(url, "${APP_TEST_PW}", p.Port(), db), fmt.Sprintf(url, testPassword, p.Port(), db)
	}
	nodes := []string{"a", "b"}
	dsn := map[string]string{}   // shard name -> DSN, password as a variable
	plain := map[string]string{} // the same, with the password
	for i, name := range nodes {
		dsn[name], plain[name] = createDB(i, "app_split")
	}
	control, _ := createDB(0, "app_split_control")
	store, err := topology.Open(ctx, control)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	require.NoError(t, store.Init(ctx))
	apply := func(cut shard.ID) error {
		_, err := store.Apply(ctx, &topology.Map{Shards: []topology.Shard{
			{Name: "a", Range: shard.Range{End: cut}.String(), Primary: dsn["a"]},
			{Name: "b", Range: shard.Range{Start: cut}.String(), Primary: dsn["b"]},
		}}, topology.ApplyOptions{Reason: "test", LockTimeout: 10 * time.Second})
		return err
	}
	// Shard a holds nearly all the keyspace, so that the key and its ID
	// both start there.
	const first = shard.ID(0xff << 56)
	require.NoError(t, apply(first))

	cfg, _, err := followStore(ctx, store, &Topology{MaxConns: 8, Replica: fast}, os.LookupEnv, nil)
	require.NoError(t, err)
	cfg.FenceWait, cfg.PollInterval = 30*time.Second, 200*time.Millisecond
	r, err := router.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	srv, err := New(ctx, r, Options{NodeID: 1})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	waitListening(t, r)
	in := &instance{t: t, srv: srv, r: r, http: hs}

	key := ""
	for i := 0; key == ""; i++ {
		if k := "split-" + strconv.Itoa(i); shard.HashString(k) < first {
			key = k
		}
	}
	hk := shard.HashString(key)
	// The first draw splits a at the higher of the two hashes: the lower
	// stays on a, the higher moves to b.
	var (
		once      sync.Once
		cut       shard.ID
		drawn     int64
		switchErr error
	)
	srv.drewID = func(id int64) {
		once.Do(func() {
			hi := shard.HashInt64(id)
			if hi == hk {
				switchErr = fmt.Errorf("ID %d hashes as the key does", id)
				return
			}
			drawn, cut = id, max(hi, hk)
			switchErr = apply(cut)
		})
	}

	const email = "split@example.com"
	res := in.do("POST", "/users", map[string]string{"name": "split", "email": email}, IdempotencyHeader, key)
	require.NoError(t, switchErr)
	require.NotZero(t, drawn, "the server drew no ID under the key")
	want(t, "POST /users", res, http.StatusCreated)
	var u userOut
	res.json(t, &u)
	id, err := strconv.ParseInt(u.ID, 10, 64)
	require.NoError(t, err)

	owner := func(h shard.ID) string {
		if h < cut {
			return "a"
		}
		return "b"
	}
	count := func(name, sql string, args ...any) int {
		conn, err := pgx.Connect(ctx, plain[name])
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&n))
		return n
	}
	home := owner(shard.HashInt64(id))
	for _, name := range nodes {
		rows := count(name, "SELECT count(*) FROM users WHERE name = 'split'")
		if name == home {
			require.Equalf(t, 1, count(name, "SELECT count(*) FROM users WHERE id = $1", id),
				"user %d (drawn first: %d) is not on shard %s, which owns its ID after the split", id, drawn, home)
			require.Equal(t, 1, rows, "shard %s: users created", name)
		} else {
			require.Zerof(t, rows, "shard %s holds a user it does not own (the ID's owner is %s)", name, home)
		}
	}
	require.NotEqual(t, drawn, id, "the ID drawn before the split, which the split put on another shard than the key, was kept")
	require.Equal(t, owner(hk), home, "the user and its key share a shard")
	require.Equal(t, 1, count(owner(hk), "SELECT count(*) FROM idempotency_keys WHERE key = $1", key))
	require.Equal(t, home, u.Shard, "the answer names the user's shard")

	got := in.do("GET", "/users/"+u.ID, nil)
	want(t, "GET /users/{id}", got, http.StatusOK)
	got = in.do("GET", "/users?email="+email, nil)
	want(t, "GET /users?email=", got, http.StatusOK)
	var byEmail userOut
	got.json(t, &byEmail)
	require.Equal(t, u.ID, byEmail.ID)

	again := in.do("POST", "/users", map[string]string{"name": "split", "email": email}, IdempotencyHeader, key)
	want(t, "POST /users again", again, http.StatusCreated)
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	var replayed userOut
	again.json(t, &replayed)
	require.Equal(t, u.ID, replayed.ID)
}
