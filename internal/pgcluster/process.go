package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// localServer is one postmaster that this process runs from a data folder of its own.
// It is safe for concurrent use: mu serialises start, stop, kill and close.
type localServer struct {
	b    *localBackend
	name string
	dir  string // data folder
	log  string // server log, beside dir so that pg_basebackup does not copy it

	mu     sync.Mutex
	portN  int
	cmd    *exec.Cmd     // nil when stopped
	exited chan struct{} // closed when cmd has exited
	closed bool
	// isFrozen: the postmaster and its processes were sent SIGSTOP (see freeze).
	isFrozen bool
}

func (s *localServer) port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.portN
}

func (s *localServer) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.runningLocked() {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *localServer) superDSN() string {
	return dsn(superuser, s.b.opts.Password, s.portN, s.b.opts.Database)
}

func (s *localServer) runningLocked() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// start runs the postmaster directly, not through pg_ctl, so that it is this process's
// child and dies with it (see sysProcAttr), and waits until it accepts connections.
func (s *localServer) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.runningLocked() {
		return nil
	}
	logf, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := s.b.prepare(exec.Command(s.b.bin.path("postgres"), "-D", s.dir))
	cmd.Stdout, cmd.Stderr = logf, logf
	err = s.b.spawner.start(cmd)
	_ = logf.Close() // the child has its own descriptor
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	if err := waitReady(ctx, s.superDSN(), exited); err != nil {
		s.killLocked()
		return err
	}
	return nil
}

// stop shuts the server down fast: clients are cut off and a shutdown checkpoint is written.
func (s *localServer) stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(ctx, syscall.SIGINT)
}

// kill crashes the server: SIGKILL to the postmaster and every backend at once.
func (s *localServer) kill(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
	return nil
}

// close stops the server for good. Without a caller's DataDir to keep, it skips the
// shutdown checkpoint (SIGQUIT, immediate shutdown): the data is about to be removed.
func (s *localServer) close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.b.keep {
		return s.stopLocked(ctx, syscall.SIGINT)
	}
	return s.stopLocked(ctx, syscall.SIGQUIT)
}

// stopLocked sends sig, then SIGQUIT (immediate shutdown), then crashes the server (see
// killLocked), each after the one before had its time, or ctx ended, without the
// postmaster exiting.
func (s *localServer) stopLocked(ctx context.Context, sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	s.thawLocked() // a stopped process would not act on sig
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{sig, time.Minute}, {syscall.SIGQUIT, 10 * time.Second}} {
		// Process.Signal goes through a pidfd: it cannot hit a recycled PID.
		err := s.cmd.Process.Signal(step.sig)
		if errors.Is(err, os.ErrProcessDone) || s.waitExit(ctx, step.wait) {
			<-s.exited
			s.cmd = nil
			return nil
		}
	}
	s.killLocked()
	return fmt.Errorf("did not shut down in time: killed")
}

func (s *localServer) waitExit(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.exited:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
}

// killLocked crashes the server at once: it freezes the postmaster, SIGKILLs its children
// (each a session of its own, so not in its process group), then the postmaster. The
// kernel hands the children to this process (see adoptOrphans), which reaps them, so
// that no zombie stays behind.
func (s *localServer) killLocked() {
	if s.cmd == nil {
		return
	}
	pm := s.cmd.Process
	adoptOrphans()
	if pm.Signal(syscall.SIGSTOP) == nil {
		waitStopped(pm.Pid)
	}
	kids := childrenOf(pm.Pid)
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = pm.Signal(syscall.SIGKILL)
	<-s.exited
	reap(kids)
	s.cmd, s.isFrozen = nil, false
}

// reap waits, for a few seconds at most, for the given orphans to be handed to this
// process, and reaps them.
func reap(pids []int) {
	for deadline := time.Now().Add(5 * time.Second); len(pids) > 0 && time.Now().Before(deadline); {
		left := pids[:0]
		for _, pid := range pids {
			var ws syscall.WaitStatus
			got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			if got == 0 && err == nil {
				left = append(left, pid) // not dead yet
			} else if errors.Is(err, syscall.ECHILD) && alive(pid) {
				left = append(left, pid) // not handed over yet
			}
		}
		pids = left
		if len(pids) > 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// reapGroup waits, for a few seconds at most, until no process of group pgid is left.
func reapGroup(pgid int) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logTail returns the last lines of the server log.
func (s *localServer) logTail(_ context.Context, lines int) string {
	f, err := os.Open(s.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		_, _ = f.Seek(-window, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return lastLines(string(b), lines)
}

// prepare makes cmd run as the servers' owner, in its own process group.
func (b *localBackend) prepare(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = sysProcAttr(b.owner.credential())
	cmd.Dir = b.base
	cmd.Env = serverEnv()
	return cmd
}

// tool prepares a server program that runs to its end, such as initdb; if ctx ends
// first, the program and whatever it started are killed.
func (b *localBackend) tool(ctx context.Context, program string, args ...string) *exec.Cmd {
	cmd := b.prepare(exec.CommandContext(ctx, b.bin.path(program), args...))
	cmd.Cancel = func() error {
		adoptOrphans()
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs cmd to its end and returns what it printed; its error carries the end of that.
func (b *localBackend) run(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := b.spawner.start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		if cmd.Process != nil {
			reapGroup(cmd.Process.Pid) // what a killed program had started
		}
		return out.Bytes(), fmt.Errorf("%s: %w\n%s", cmd.Args[0], err, lastLines(out.String(), 20))
	}
	return out.Bytes(), nil
}

// serverEnv is this process's environment without the PG* variables, which would change
// what the server programs connect to, and with messages in English for diagnosis.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "LC_") && !strings.HasPrefix(kv, "LANG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}
