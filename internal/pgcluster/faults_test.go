package pgcluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

func TestPauseAndResumeReplay(t *testing.T) {
	ctx := testContext(t)
	sh := cluster.Shards()[1]
	primary, replica := sh.Primary, sh.Replicas[0]
	p := connect(t, primary.DSN())
	r := connect(t, replica.DSN())
	exec(t, p, "CREATE TABLE paused (id int)")
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}

	if err := replica.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.ResumeReplay(context.Background()) })
	exec(t, p, "INSERT INTO paused SELECT generate_series(1, 100)")
	written := lsn(t, p, "pg_current_wal_lsn()")
	// Once the replica has received the insert, its replay is paused for certain.
	for lsn(t, r, "pg_last_wal_receive_lsn()") < written ||
		queryInt(t, r, "SELECT (pg_get_wal_replay_pause_state() = 'paused')::int") == 0 {
		if ctx.Err() != nil {
			t.Fatal("replica never received the insert, or never paused")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := lsn(t, r, "pg_last_wal_replay_lsn()")
	time.Sleep(200 * time.Millisecond)
	if now := lsn(t, r, "pg_last_wal_replay_lsn()"); now != stopped || now >= written {
		t.Errorf("paused replay LSN moved from %d to %d (primary at %d)", stopped, now, written)
	}
	if n := queryInt(t, r, "SELECT count(*) FROM paused"); n != 0 {
		t.Errorf("paused replica sees %d rows, want 0", n)
	}

	if err := replica.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}
	if now := lsn(t, r, "pg_last_wal_replay_lsn()"); now < written {
		t.Errorf("resumed replay LSN %d, want at least %d", now, written)
	}
	if n := queryInt(t, r, "SELECT count(*) FROM paused"); n != 100 {
		t.Errorf("resumed replica sees %d rows, want 100", n)
	}
}

func TestStopStartKeepsData(t *testing.T) {
	ctx := testContext(t)
	sh := cluster.Shards()[0]
	primary, replica := sh.Primary, sh.Replicas[0]
	p := connect(t, primary.DSN())
	exec(t, p, "CREATE TABLE survives (id int)")
	exec(t, p, "INSERT INTO survives VALUES (1)")

	for _, tc := range []struct {
		name string
		down func(*pgcluster.Node, context.Context) error
	}{{"Stop", (*pgcluster.Node).Stop}, {"Kill", (*pgcluster.Node).Kill}} {
		t.Run(tc.name, func(t *testing.T) {
			port := primary.Port()
			procs := withChildren(t, []int{primary.PID()})
			if err := tc.down(primary, ctx); err != nil {
				t.Fatal(err)
			}
			if got := primary.PID(); got != 0 {
				t.Errorf("PID() after %s = %d, want 0", tc.name, got)
			}
			if left := remaining(procs); cluster.Backend() == pgcluster.BackendLocal && len(left) > 0 {
				t.Errorf("processes left after %s: %v", tc.name, left)
			}
			if conn, err := pgx.Connect(ctx, primary.DSN()); err == nil {
				_ = conn.Close(ctx)
				t.Fatalf("connected to %s after %s", primary.Name(), tc.name)
			}
			if err := tc.down(primary, ctx); err != nil {
				t.Errorf("%s twice: %v", tc.name, err)
			}
			if err := primary.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if primary.Port() != port {
				t.Errorf("Port() after Start = %d, want %d", primary.Port(), port)
			}
			p := connect(t, primary.DSN())
			if n := queryInt(t, p, "SELECT count(*) FROM survives"); n != 1 {
				t.Errorf("after %s and Start: %d rows, want 1", tc.name, n)
			}
			// The replica reconnects by itself and catches up with later writes.
			exec(t, p, "INSERT INTO survives VALUES (2)")
			if err := replica.WaitCaughtUp(ctx, primary); err != nil {
				t.Fatal(err)
			}
			exec(t, p, "DELETE FROM survives WHERE id = 2")
		})
	}
}

func TestPromote(t *testing.T) {
	ctx := testContext(t)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	replica := c.Shards()[0].Replicas[0]
	r := connect(t, replica.DSN())
	if got := queryInt(t, r, "SELECT pg_is_in_recovery()::int"); got != 1 {
		t.Fatalf("before Promote: pg_is_in_recovery() = %d, want 1", got)
	}
	if err := replica.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if got := queryInt(t, r, "SELECT pg_is_in_recovery()::int"); got != 0 {
		t.Errorf("after Promote: pg_is_in_recovery() = %d, want 0", got)
	}
	exec(t, r, "CREATE TABLE written_on_promoted (id int)")
}

func TestSetSetting(t *testing.T) {
	ctx := testContext(t)
	replica := cluster.Shards()[1].Replicas[0]
	t.Cleanup(func() { _ = replica.SetSetting(context.Background(), "recovery_min_apply_delay", "0") })
	for _, value := range []string{"1500ms", "0"} {
		if err := replica.SetSetting(ctx, "recovery_min_apply_delay", value); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := connect(t, replica.DSN()).QueryRow(ctx, "SHOW recovery_min_apply_delay").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"1500ms": "1500ms", "0": "0"}[value]; got != want {
			t.Errorf("after SetSetting(%q): SHOW = %q, want %q", value, got, want)
		}
	}
	if err := replica.SetSetting(ctx, "no such; setting", "1"); err == nil {
		t.Error("SetSetting with a bad name succeeded")
	}
}

func TestSuperExecTerminatesBackend(t *testing.T) {
	ctx := testContext(t)
	primary := cluster.Shards()[0].Primary
	victim := connect(t, primary.DSN())
	pid := victim.PgConn().PID()
	if err := primary.SuperExec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if _, err := victim.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("terminated connection still works")
	}
}
