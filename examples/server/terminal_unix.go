//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeTerminal, when PGSHARD_TAKE_TERMINAL is set (make run sets it) and
// stdin is a terminal, moves the server into a process group of its own
// and makes it the terminal's foreground: Ctrl-C then reaches the server
// alone, which shuts down and exits 0, and not make, which would die of
// the signal and report the run as interrupted. restore gives the terminal
// back to the group that had it.
func takeTerminal() (restore func()) {
	noop := func() {}
	if os.Getenv("PGSHARD_TAKE_TERMINAL") == "" {
		return noop
	}
	fd := int(os.Stdin.Fd())
	was, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || was != syscall.Getpgrp() {
		return noop // not a terminal, or not ours to give
	}
	signal.Ignore(syscall.SIGTTOU) // a background group may not set the foreground otherwise
	if err := syscall.Setpgid(0, 0); err != nil {
		return noop
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, syscall.Getpgrp()); err != nil {
		syscall.Setpgid(0, was)
		return noop
	}
	return func() { unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, was) }
}
