package pgcluster

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sysProcAttr runs a server program as cred (nil: as this process) in a process group of
// its own, out of reach of a terminal's ^C: pgcluster decides when it stops. The kernel
// sends it SIGQUIT (PostgreSQL's immediate shutdown) if this process dies; see spawner.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
}

// adoptOrphans makes this process the reaper of its orphaned descendants, so that the
// children of a postmaster killed with SIGKILL can be waited for here. Without it they
// are reparented to PID 1, which in some containers never reaps them. It lasts for the
// life of the process: other orphans of a test binary stay zombies until it exits.
func adoptOrphans() {
	const prSetChildSubreaper = 36
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}

// runParent returns where the data folders of a cluster go: /dev/shm when it is a tmpfs
// with room to spare, since creating a file there is many times cheaper than on disk and
// a node has over a thousand; else os.TempDir().
func runParent() string {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Type == tmpfsMagic &&
		uint64(st.Bavail)*uint64(st.Bsize) >= 2<<30 && syscall.Access("/dev/shm", 7) == nil {
		return "/dev/shm"
	}
	return os.TempDir()
}

// childrenOf returns the processes whose parent is ppid.
func childrenOf(ppid int) []int {
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, parent := procStat(pid); state != 0 && parent == ppid {
			kids = append(kids, pid)
		}
	}
	return kids
}

// waitStopped waits, for a second at most, until a process that was sent SIGSTOP stops.
func waitStopped(pid int) {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if state, _ := procStat(pid); state == 'T' || state == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// procStat returns a process's state letter and parent from /proc; state 0 if it is gone.
func procStat(pid int) (state byte, ppid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 2 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(fields[1])
	return fields[0][0], ppid
}

// descendants returns the processes below pid: its children, theirs, and so on.
func descendants(pid int) []int {
	kids := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, parent := procStat(p); state != 0 {
			kids[parent] = append(kids[parent], p)
		}
	}
	var out []int
	for queue := kids[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, kids[queue[0]]...)
	}
	return out
}

// thawStale sends SIGCONT to a postmaster, and to its processes, whose test process
// died while it was frozen: the parent-death signal waits, pending, until it runs again.
func thawStale(pid int) {
	for _, p := range descendants(pid) {
		_ = syscall.Kill(p, syscall.SIGCONT)
	}
	_ = syscall.Kill(pid, syscall.SIGCONT)
}
