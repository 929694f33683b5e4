package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// Node is one PostgreSQL server of a Cluster: a shard's primary or one of its streaming
// replicas. It is safe for concurrent use; Stop, Start and Kill wait for each other.
type Node struct {
	name     string
	shard    string
	user     string
	password string
	database string
	srv      server
	cluster  *Cluster // closes the node's proxies
}

// Name returns the node's name, such as "shard0-primary" or "shard1-replica2".
func (n *Node) Name() string { return n.name }

// Shard returns the name of the node's shard, such as "shard0".
func (n *Node) Shard() string { return n.shard }

// Port returns the node's TCP port on 127.0.0.1. It stays the same across Stop and Start.
func (n *Node) Port() int { return n.srv.port() }

// PID returns the process ID of the node's postmaster, or 0 when the node is stopped or
// its server is not a process of this machine (docker).
func (n *Node) PID() int { return n.srv.pid() }

// DSN returns a URL that connects the cluster's user, with its password, to the cluster's
// database on this node, for pgx.Connect or pgxpool.New.
func (n *Node) DSN() string { return dsn(n.user, n.password, n.Port(), n.database) }

// SuperDSN is like DSN for the superuser postgres, which may call pg_terminate_backend and
// the like.
func (n *Node) SuperDSN() string { return dsn(superuser, n.password, n.Port(), n.database) }

// String returns the node's name and address, without the password.
func (n *Node) String() string {
	u := url.URL{Scheme: "postgres", User: url.User(n.user), Host: "127.0.0.1:" + strconv.Itoa(n.Port()),
		Path: "/" + n.database}
	return fmt.Sprintf("%s (%s)", n.name, u.String())
}

// LogTail returns the last lines of the node's server log, for a test to print when it fails.
func (n *Node) LogTail(ctx context.Context, lines int) string { return n.srv.logTail(ctx, lines) }

// SuperExec runs one statement as the superuser on a connection of its own.
func (n *Node) SuperExec(ctx context.Context, sql string, args ...any) error {
	conn, err := connect(ctx, n.SuperDSN())
	if err != nil {
		return n.fail(ctx, "connect to", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return &NodeError{Node: n.name, Op: "exec on", Err: err}
	}
	return nil
}

// WaitCaughtUp waits until this replica streams WAL and has replayed everything that
// primary had written when WaitCaughtUp was called, so that a read on it sees every
// write that committed on primary before.
func (n *Node) WaitCaughtUp(ctx context.Context, primary *Node) error {
	if err := waitCaughtUp(ctx, primary.SuperDSN(), n.SuperDSN()); err != nil {
		return n.fail(ctx, "wait for replication on", err)
	}
	return nil
}

// fail wraps err with the node's name and, but for a closed cluster, its log's last lines.
func (n *Node) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	e := &NodeError{Node: n.name, Op: op, Err: err}
	if !errors.Is(err, ErrClosed) {
		e.Log = n.srv.logTail(context.WithoutCancel(ctx), 10)
	}
	return e
}
