package router_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, router.ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

func TestOpenFailsWithNoReachablePrimary(t *testing.T) {
	cfg := router.Config{Shards: []router.ShardConfig{{Range: "-", Primary: "postgres://u:p@127.0.0.1:1/db?connect_timeout=1"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := router.Open(ctx, cfg)
	if err == nil {
		r.Close()
		t.Fatal("Open succeeded with no reachable primary")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1/db") || !strings.Contains(err.Error(), "connect") {
		t.Errorf("error %q does not say which node failed and why", err)
	}

	// A wrong password: the error says so, without the password.
	bad := config(t, cluster)
	bad.Shards = bad.Shards[:1]
	bad.Shards[0].Range = "-"
	bad.Shards[0].Primary = strings.Replace(bad.Shards[0].Primary, ":pgshard@", ":Wr0ngPassw0rd@", 1)
	bad.Shards[0].Replicas = nil
	bad.Replica.ConnectTimeout = time.Second
	_, err = router.Open(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") || strings.Contains(err.Error(), "Wr0ngPassw0rd") {
		t.Errorf("Open with a wrong password: %v; want the server's reason, without the password", err)
	}
}

// Every user's row lands on the shard its range names, and nowhere else.
func TestRouting(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	schema(t, r)
	if err := r.ExecAll(ctx, "CREATE TABLE IF NOT EXISTS routed (id bigint PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := r.ExecAll(ctx, "TRUNCATE routed"); err != nil {
		t.Fatal(err)
	}
	const users = 10000
	for id := int64(1); id <= users; id++ {
		if _, err := r.User(id).Exec(ctx, "INSERT INTO routed VALUES ($1)", id); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i, name := range r.Map().Shards() {
		rng, _ := r.Map().Range(name)
		conn, err := pgx.Connect(ctx, cluster.Shards()[i].Primary.DSN())
		if err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, "SELECT id FROM routed")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if !rng.Contains(shard.HashInt64(id)) {
				t.Fatalf("user %d is on shard %s (%s), outside its range", id, name, rng)
			}
		}
		if len(ids) < users/4*9/10 {
			t.Errorf("shard %s holds %d users, want about %d", name, len(ids), users/4)
		}
		total += len(ids)
	}
	if total != users {
		t.Errorf("%d rows across the shards, want %d", total, users)
	}
}

func TestSessionReadYourWrites(t *testing.T) {
	ctx := context.Background()
	r := open(t, config(t, cluster))
	schema(t, r)
	const id = int64(7)
	target := r.User(id)
	sh := shardOf(t, r, target.Shard())
	rep := sh.Replicas[0]
	if _, err := target.Exec(ctx, "INSERT INTO users VALUES ($1, '0') ON CONFLICT (id) DO UPDATE SET name = '0'", id); err != nil {
		t.Fatal(err)
	}
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
		if err != nil {
			t.Fatal(err)
		}
		sctx := router.WithSession(ctx, parsed)
		if _, err := target.Exec(sctx, "UPDATE users SET name = $2 WHERE id = $1", id, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		info := &router.ReadInfo{}
		var name string
		if err := target.QueryRow(router.WithReadInfo(sctx, info), "SELECT name FROM users WHERE id = $1", id).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name != fmt.Sprint(i) {
			t.Fatalf("pair %d: read %q from the %s, missing its own write", i, name, info.ServedBy())
		}
		if info.ServedBy() == "replica" {
			fromReplica++
		}
		sess = parsed
	}
	t.Logf("%d of 2000 session reads served by the replica", fromReplica)
	if fromReplica == 0 {
		t.Error("no session read was served by the replica")
	}
}

func TestSessionToken(t *testing.T) {
	s := router.NewSession()
	if tok := s.Token(); tok != "1." {
		t.Errorf("empty session token = %q, want 1.", tok)
	}
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
			if err == nil || !errors.Is(err, router.ErrInvalidToken) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("ParseSession(%.20q) = %v, want ErrInvalidToken saying %q", tc.token, err, tc.mention)
			}
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
		if err != nil {
			t.Fatalf("token %q parsed, but its re-encoding %q does not: %v", token, s.Token(), err)
		}
		if again.Token() != s.Token() {
			t.Fatalf("token does not round-trip: %q then %q", s.Token(), again.Token())
		}
	})
}
