package pgcluster

import (
	"os/exec"
	"runtime"
	"sync"
)

// spawner starts the server programs from one OS thread that it keeps to itself. It is
// safe for concurrent use. The kernel sends the parent-death signal (see sysProcAttr)
// when the thread that started a process ends, not the process; and Go ends a thread
// when a goroutine that locked it exits, which any code in the process may do. Only
// this goroutine's exit, at close, can end this thread.
type spawner struct {
	mu     sync.Mutex
	reqs   chan func()
	closed bool
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func())}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		for f := range s.reqs {
			f()
		}
	}()
	return s
}

// start starts cmd from the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	done := make(chan error)
	s.reqs <- func() { done <- cmd.Start() }
	return <-done
}

// close ends the spawner's thread; any process it started and that still runs receives
// its parent-death signal.
func (s *spawner) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.reqs)
	}
}
