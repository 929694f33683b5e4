package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// buildServer builds the reference server into dir.
func buildServer(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/pgshard/pgshard/examples/server")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build the server: %v\n%s", err, out)
	}
	return bin, nil
}

// server is the reference server running as a child process.
type server struct {
	cmd      *exec.Cmd
	base     string // http://127.0.0.1:port
	topology string // the banner's topology line
	logPath  string // its stderr
	exited   chan struct{}
	waitErr  error
}

var (
	bannerURL  = regexp.MustCompile(`server on (http://127\.0\.0\.1:\d+)`)
	bannerTopo = regexp.MustCompile(`^\s*topology\s+(.*)$`)
)

// startServer runs bin with args and waits for its banner, which says
// where it listens. Its stderr goes to a file in dir.
func startServer(ctx context.Context, bin, dir string, args ...string) (*server, error) {
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	s := &server{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	found := make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if m := bannerTopo.FindStringSubmatch(line); m != nil && s.topology == "" {
				s.topology = m[1]
			}
			if m := bannerURL.FindStringSubmatch(line); m != nil && s.base == "" {
				s.base = m[1]
			}
			if strings.HasPrefix(line, "Ctrl-C") && s.base != "" {
				once.Do(func() { close(found) })
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	select {
	case <-found:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("the server exited at start: %v\n%s", s.waitErr, s.logTail())
	case <-time.After(3 * time.Minute):
		s.stop(io.Discard)
		return nil, fmt.Errorf("no banner from the server within 3 minutes\n%s", s.logTail())
	case <-ctx.Done():
		s.stop(io.Discard)
		return nil, ctx.Err()
	}
}

// waitReady polls /readyz until it says 200.
func (s *server) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get(s.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz not 200 within %v\n%s", s.base, within, s.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop sends the server SIGINT, by its PID, and waits for it to finish its
// requests and stop its dev cluster; after a minute, it kills it (and the
// kernel then stops the cluster's servers). It returns how it ended.
func (s *server) stop(log io.Writer) string {
	select {
	case <-s.exited:
		return "had exited: " + fmt.Sprint(s.waitErr)
	default:
	}
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		fmt.Fprintf(log, "soak: interrupt the server (pid %d): %v\n", s.cmd.Process.Pid, err)
	}
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return "exited: " + s.waitErr.Error()
		}
		return "exited cleanly on SIGINT"
	case <-time.After(time.Minute):
		fmt.Fprintf(log, "soak: the server (pid %d) is still running a minute after SIGINT: killing it\n", s.cmd.Process.Pid)
		s.cmd.Process.Kill()
		<-s.exited
		return "killed a minute after SIGINT"
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "server log (last lines):\n" + strings.Join(lines[max(0, len(lines)-20):], "\n")
}
