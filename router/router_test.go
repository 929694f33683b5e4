package router_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
)

func TestOpenRejectsBadConfig(t *testing.T) {
	good := config(t, cluster)
	tests := []struct {
		name    string
		edit    func(*router.Config)
		mention []string
	}{
		{"no shards", func(c *router.Config) { c.Shards = nil }, []string{"no shards"}},
		{"bad range", func(c *router.Config) { c.Shards[1].Range = "4-80" }, []string{"Shards[1]", "Range", `"4-80"`}},
		{"gap", func(c *router.Config) { c.Shards = c.Shards[1:] }, []string{"gap -40"}},
		{"overlap", func(c *router.Config) { c.Shards[0].Range = "-80" }, []string{"overlap"}},
		{"duplicate name", func(c *router.Config) { c.Shards[0].Name = "x"; c.Shards[1].Name = "x" }, []string{`"x"`, "twice"}},
		{"no primary", func(c *router.Config) { c.Shards[2].Primary = "" }, []string{`"80-c0"`, "Primary is empty"}},
		{"bad channel", func(c *router.Config) { c.Channel = "no spaces" }, []string{"Channel"}},
		{"unparsable dsn with password", func(c *router.Config) { c.Shards[3].Replicas = []string{"postgres://u:s3cret@127.0.0.1:notaport/db"} }, []string{"c0-", "Replicas[0]"}},
		{"negative lag", func(c *router.Config) { c.Replica.MaxLag = -time.Second }, []string{"MaxLag"}},
		// Bug 3: one node in two places.
		{"primary is also a replica", func(c *router.Config) { c.Shards[1].Replicas = []string{c.Shards[1].Primary} },
			[]string{`"40-80"`, "Primary", "Replicas[0]", "listed twice"}},
		{"replica listed twice", func(c *router.Config) {
			c.Shards[2].Replicas = []string{c.Shards[2].Replicas[0], c.Shards[2].Replicas[0]}
		}, []string{`"80-c0"`, "Replicas[0]", "Replicas[1]", "listed twice"}},
		{"node under two shards", func(c *router.Config) { c.Shards[3].Replicas = []string{c.Shards[0].Replicas[0]} },
			[]string{`"-40"`, `"c0-"`, "two shards"}},
		{"same server, other database", func(c *router.Config) {
			u, _ := url.Parse(c.Shards[0].Primary)
			u.Path = "/other"
			c.Shards[0].Replicas = []string{u.String()}
		}, []string{`"-40"`, "same server"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			cfg.Shards = append([]router.ShardConfig(nil), good.Shards...)
			tc.edit(&cfg)
			r, err := router.Open(context.Background(), cfg)
			if err == nil {
				r.Close()
			}
			require.Error(t, err, "Open succeeded")
			assert.ErrorIs(t, err, router.ErrInvalidConfig)
			for _, s := range tc.mention {
				assert.ErrorContains(t, err, s)
			}
			assert.NotContains(t, err.Error(), "s3cret", "the error shows a password")
		})
	}
}

func TestOpenFailsWithNoReachablePrimary(t *testing.T) {
	cfg := router.Config{Shards: []router.ShardConfig{{Range: "-", Primary: "postgres://u:p@127.0.0.1:1/db?connect_timeout=1"}}}
	// Open gives up on its own after ConnectTimeout; the context only
	// bounds a hang, generously, so that on a loaded machine it is not
	// what ends the call (the error would then name the deadline, not
	// the refusal).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := router.Open(ctx, cfg)
	if err == nil {
		r.Close()
	}
	require.Error(t, err, "Open succeeded with no reachable primary")
	assert.ErrorContains(t, err, "127.0.0.1:1/db", "the error says which node failed")
	assert.ErrorContains(t, err, "connect", "the error says why the node failed")

	// A wrong password: the error says so, without the password.
	bad := config(t, cluster)
	bad.Shards = bad.Shards[:1]
	bad.Shards[0].Range = "-"
	bad.Shards[0].Primary = strings.Replace(bad.Shards[0].Primary, ":pgshard@", ":Wr0ngPassw0rd@", 1)
	bad.Shards[0].Replicas = nil
	bad.Replica.ConnectTimeout = time.Second
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = router.Open(ctx, bad)
	if assert.Error(t, err, "Open with a wrong password") {
		assert.ErrorContains(t, err, "password authentication failed", "Open with a wrong password: want the server's reason")
		assert.NotContains(t, err.Error(), "Wr0ngPassw0rd", "Open with a wrong password: the error shows the password")
	}
}

// Every user's row lands on the shard its range names, and nowhere else.
func TestRouting(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	schema(t, r)
	require.NoError(t, r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS routed (id bigint PRIMARY KEY)"))
	require.NoError(t, r.ExecAll(ctx, "TRUNCATE routed"))
	const users = 10000
	for id := int64(1); id <= users; id++ {
		_, err := r.User(id).Exec(ctx, "INSERT INTO routed VALUES ($1)", id)
		require.NoError(t, err)
	}
	total := 0
	for i, name := range r.Map().Shards() {
		rng, _ := r.Map().Range(name)
		conn, err := pgx.Connect(ctx, cluster.Shards()[i].Primary.DSN())
		require.NoError(t, err)
		rows, err := conn.Query(ctx, "SELECT id FROM routed")
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		conn.Close(ctx)
		require.NoError(t, err)
		for _, id := range ids {
			require.True(t, rng.Contains(shard.HashInt64(id)), "user %d is on shard %s (%s), outside its range", id, name, rng)
		}
		assert.GreaterOrEqual(t, len(ids), users/4*9/10, "shard %s holds %d users, want about %d", name, len(ids), users/4)
		total += len(ids)
	}
	assert.Equal(t, users, total, "rows across the shards")
}

func TestSessionReadYourWrites(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	schema(t, r)
	const id = int64(7)
	target := r.User(id)
	sh := shardOf(t, r, target.Shard())
	rep := sh.Replicas[0]
	_, err := target.Exec(ctx, "INSERT INTO users VALUES ($1, '0') ON CONFLICT (id) DO UPDATE SET name = '0'", id)
	require.NoError(t, err)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		paused := false
		for {
			select {
			case <-stop:
				rep.ResumeReplay(context.Background())
				return
			case <-time.After(200 * time.Millisecond):
			}
			if paused {
				rep.ResumeReplay(context.Background())
			} else {
				rep.PauseReplay(context.Background())
			}
			paused = !paused
		}
	}()
	defer func() { close(stop); <-done }()
	sess := router.NewSession()
	fromReplica := 0
	for i := 1; i <= 2000; i++ {
		// Carry the session through its token, as an HTTP client would.
		parsed, err := router.ParseSession(sess.Token())
		require.NoError(t, err)
		sctx := router.WithSession(ctx, parsed)
		_, err = target.Exec(sctx, "UPDATE users SET name = $2 WHERE id = $1", id, fmt.Sprint(i))
		require.NoError(t, err)
		info := &router.ReadInfo{}
		var name string
		require.NoError(t, target.QueryRow(router.WithReadInfo(sctx, info), "SELECT name FROM users WHERE id = $1", id).Scan(&name))
		require.Equal(t, fmt.Sprint(i), name, "pair %d: read from the %s, missing its own write", i, info.ServedBy())
		if info.ServedBy() == "replica" {
			fromReplica++
		}
		sess = parsed
	}
	t.Logf("%d of 2000 session reads served by the replica", fromReplica)
	assert.NotZero(t, fromReplica, "no session read was served by the replica")
}

func TestSessionToken(t *testing.T) {
	s := router.NewSession()
	assert.Equal(t, "1.", s.Token(), "empty session token")
	tests := []struct {
		name, token, mention string
	}{
		{"empty", "", "want VERSION.DATA"},
		{"no dot", "1abc", "want VERSION.DATA"},
		{"future version", "2.AAAA", "version"},
		{"bad base64", "1.!!!", "base64"},
		{"truncated", "1.Aw", "bad"},
		{"oversized", "1." + strings.Repeat("A", 5000), "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := router.ParseSession(tc.token)
			assert.ErrorIs(t, err, router.ErrInvalidToken, "ParseSession(%.20q)", tc.token)
			assert.ErrorContains(t, err, tc.mention, "ParseSession(%.20q)", tc.token)
		})
	}
}

func FuzzParseSession(f *testing.F) {
	for _, s := range []string{"1.", "1.AwOtODDTAQ", "2.", "", "1.////", "1.A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		s, err := router.ParseSession(token)
		if err != nil {
			return
		}
		again, err := router.ParseSession(s.Token())
		require.NoError(t, err, "token %q parsed, but its re-encoding %q does not", token, s.Token())
		require.Equal(t, s.Token(), again.Token(), "token does not round-trip")
	})
}
