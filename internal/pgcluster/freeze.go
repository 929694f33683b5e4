package pgcluster

import (
	"context"
	"errors"
	"syscall"
)

// errNotRunning means that a node had to run for what was asked of it.
var errNotRunning = errors.New("server is not running")

// Cleaner is the part of testing.TB that FreezeForTest uses.
type Cleaner interface{ Cleanup(func()) }

// Freeze stops the node cold, as a machine that hangs would: SIGSTOP to its postmaster
// and then to every process the postmaster had started (the docker backend pauses the
// container). Clients keep their connections, and the kernel still completes new TCP
// handshakes, but nothing is answered until Thaw. Freezing a frozen node does nothing; a
// stopped node cannot be frozen.
//
// A frozen node is never left behind: Stop, Kill and the cluster's Close thaw it first.
// A test that freezes a node of a shared cluster should use FreezeForTest, which also
// thaws it when the test ends, pass or fail.
func (n *Node) Freeze(ctx context.Context) error {
	return n.fail(ctx, "freeze", n.srv.freeze(ctx))
}

// Thaw lets a frozen node run again (SIGCONT to its processes; docker unpause): the
// requests its clients sent meanwhile are answered then. Thawing a node that is not
// frozen does nothing.
func (n *Node) Thaw(ctx context.Context) error {
	return n.fail(ctx, "thaw", n.srv.thaw(ctx))
}

// FreezeForTest freezes the node like Freeze, and thaws it when t's test ends.
func (n *Node) FreezeForTest(ctx context.Context, t Cleaner) error {
	t.Cleanup(func() { _ = n.Thaw(context.WithoutCancel(ctx)) })
	return n.Freeze(ctx)
}

// Frozen reports whether the node is frozen.
func (n *Node) Frozen() bool { return n.srv.frozen() }

func (s *localServer) freeze(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.runningLocked() {
		return errNotRunning
	}
	if s.isFrozen {
		return nil
	}
	// The postmaster first, so that it starts no process meanwhile; then its children,
	// found after it stopped.
	pm := s.cmd.Process
	if err := pm.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	s.isFrozen = true
	waitStopped(pm.Pid)
	for _, pid := range descendants(pm.Pid) {
		if syscall.Kill(pid, syscall.SIGSTOP) == nil {
			waitStopped(pid)
		}
	}
	return nil
}

func (s *localServer) thaw(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thawLocked()
	return nil
}

// thawLocked sends SIGCONT to the postmaster's processes, then to the postmaster. A
// signal that arrived while they were stopped (a shutdown request, the parent-death
// signal) is handled then.
func (s *localServer) thawLocked() {
	if !s.isFrozen || s.cmd == nil {
		s.isFrozen = false
		return
	}
	pm := s.cmd.Process
	for _, pid := range descendants(pm.Pid) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	_ = pm.Signal(syscall.SIGCONT)
	s.isFrozen = false
}

func (s *localServer) frozen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isFrozen
}
