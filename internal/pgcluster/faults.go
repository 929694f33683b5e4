package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Stop shuts the node down fast (SIGINT): open connections are cut off, a shutdown
// checkpoint is written, and the data stays for Start. Stopping a stopped node does nothing.
func (n *Node) Stop(ctx context.Context) error {
	return n.fail(ctx, "stop", n.srv.stop(ctx))
}

// Start starts a stopped or killed node again, on the same port with the same data, and
// waits until it accepts connections (a killed node first runs crash recovery). A replica
// then streams again from its upstream, if that runs. Starting a running node does nothing.
func (n *Node) Start(ctx context.Context) error {
	return n.fail(ctx, "start", n.srv.start(ctx))
}

// Kill crashes the node: SIGKILL to the postmaster and all its backends at once, with no
// shutdown checkpoint and no goodbye to clients. Start runs crash recovery. The docker
// backend kills the container.
func (n *Node) Kill(ctx context.Context) error {
	return n.fail(ctx, "kill", n.srv.kill(ctx))
}

// Promote turns a replica into a primary and waits until it accepts writes. The other
// replicas of its shard keep following the old primary.
func (n *Node) Promote(ctx context.Context) error {
	var ok bool
	err := n.superQueryRow(ctx, "SELECT pg_promote(wait => true, wait_seconds => 60)", &ok)
	if err == nil && !ok {
		err = errors.New("pg_promote did not finish within 60 s")
	}
	return n.fail(ctx, "promote", err)
}

// PauseReplay stops a replica from applying WAL: it goes on receiving WAL, but its data
// and pg_last_wal_replay_lsn() stay where they are until ResumeReplay, so its lag grows.
func (n *Node) PauseReplay(ctx context.Context) error {
	return n.fail(ctx, "pause replay on", n.superQueryRow(ctx, "SELECT pg_wal_replay_pause()", nil))
}

// ResumeReplay lets a paused replica apply WAL again. It does not wait for it to catch
// up: see WaitCaughtUp.
func (n *Node) ResumeReplay(ctx context.Context) error {
	return n.fail(ctx, "resume replay on", n.superQueryRow(ctx, "SELECT pg_wal_replay_resume()", nil))
}

// SetSetting sets a server setting with ALTER SYSTEM, reloads the configuration and waits
// until the postmaster has reloaded it, so that later connections see the new value; for
// example recovery_min_apply_delay on a replica. A setting that needs a restart takes
// effect after Stop and Start. The value is a string as in postgresql.conf, e.g. "2s".
func (n *Node) SetSetting(ctx context.Context, name, value string) error {
	if !settingName.MatchString(name) {
		return &NodeError{Node: n.name, Op: "set setting on", Err: fmt.Errorf("bad setting name %q", name)}
	}
	conn, err := connect(ctx, n.SuperDSN())
	if err != nil {
		return n.fail(ctx, "set setting on", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var asked time.Time
	err = conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&asked)
	if err == nil {
		_, err = conn.Exec(ctx, "ALTER SYSTEM SET "+quoteIdent(name)+" = "+quoteLiteral(value))
	}
	if err == nil {
		_, err = conn.Exec(ctx, "SELECT pg_reload_conf()")
	}
	for err == nil {
		// pg_conf_load_time() in a new session is when the postmaster last reloaded.
		var done bool
		if err = n.superQueryRow(ctx, "SELECT pg_conf_load_time() >= $1", &done, asked); err != nil || done {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(pollEvery):
		}
	}
	return n.fail(ctx, "set "+name+" on", err)
}

// superQueryRow runs a one-row query as the superuser and scans its one column into dst,
// or discards it when dst is nil.
func (n *Node) superQueryRow(ctx context.Context, sql string, dst any, args ...any) error {
	conn, err := connect(ctx, n.SuperDSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if dst == nil {
		var discard any
		dst = &discard
	}
	return conn.QueryRow(ctx, sql, args...).Scan(dst)
}
