package pgcluster_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

// cluster is shared by the tests of this package; a test that stops or pauses a node puts
// it back before it ends. Tests that change the topology start a cluster of their own.
var cluster *pgcluster.Cluster

func TestMain(m *testing.M) {
	code := pgcluster.RunMain(m, pgcluster.Options{Shards: 2, Replicas: 1}, &cluster)
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "goroutines left after Close:", err)
		code = 1
	}
	os.Exit(code)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// lsn reads a WAL position as a number of bytes, so that positions compare as integers.
func lsn(t *testing.T, conn *pgx.Conn, expr string) int64 {
	t.Helper()
	return queryInt(t, conn, "SELECT pg_wal_lsn_diff("+expr+", '0/0')::bigint")
}

// withChildren returns pids and the processes whose parent is one of them: a postmaster
// and its backends.
func withChildren(t *testing.T, pids []int) []int {
	t.Helper()
	parents := map[string]bool{}
	for _, p := range pids {
		parents[strconv.Itoa(p)] = true
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	all := append([]int(nil), pids...)
	for _, e := range entries {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces, so cut after the last ')'.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && parents[fields[1]] {
			pid, _ := strconv.Atoi(e.Name())
			all = append(all, pid)
		}
	}
	return all
}

// remaining returns the processes of pids that still exist, zombies included.
func remaining(pids []int) []int {
	var left []int
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			left = append(left, pid)
		}
	}
	return left
}

// procState returns a process's state letter from /proc ('T' when stopped), or 0 when
// it is gone.
func procState(pid int) byte {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) == 0 {
		return 0
	}
	return fields[0][0]
}
