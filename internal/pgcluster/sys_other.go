//go:build !linux

package pgcluster

import (
	"os"
	"syscall"
)

// sysProcAttr runs a server program as cred (nil: as this process) in its own process
// group. Outside Linux there is no parent-death signal: Close must run.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}

func adoptOrphans() {}

func runParent() string { return os.TempDir() }

// Without /proc, Kill reaches the postmaster only; its children exit when they notice.
func childrenOf(int) []int { return nil }

func waitStopped(int) {}

func descendants(int) []int { return nil }

func thawStale(pid int) { _ = syscall.Kill(pid, syscall.SIGCONT) }
