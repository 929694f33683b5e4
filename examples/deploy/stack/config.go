package stack

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

// writeConfigs writes haproxy.cfg and prometheus.yml into the configuration folder.
func (s *Stack) writeConfigs() error {
	ms := strconv.FormatInt(s.opts.CheckInterval.Milliseconds(), 10) + "ms"
	var hap strings.Builder
	// Health checks on /readyz, which answers 503 while a shard has no write target.
	// fall 1: a refused check (a dead instance) takes it out at once; rise 2 brings it
	// back after two good ones. redispatch with retries sends a request whose connection
	// was refused to another instance: nothing was sent, so no write runs twice.
	fmt.Fprintf(&hap, `global
	maxconn 4096
defaults
	mode http
	timeout connect 2s
	timeout client 30s
	timeout server 30s
	timeout check 2s
	retries 2
	option redispatch
	option forwardfor
frontend api
	bind 127.0.0.1:%d
	default_backend app
backend app
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	default-server inter %s fastinter %s downinter %s fall 1 rise 2
`, s.HAProxy, ms, ms, ms)
	for _, in := range s.Instances {
		fmt.Fprintf(&hap, "\tserver %s 127.0.0.1:%d check\n", in.Name, in.Port)
	}
	fmt.Fprintf(&hap, `listen stats
	bind 127.0.0.1:%d
	stats enable
	stats uri /
	stats refresh 2s
`, s.Stats)
	var prom strings.Builder
	prom.WriteString("global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: pgshard\n    static_configs:\n      - targets:\n")
	for _, in := range s.Instances {
		fmt.Fprintf(&prom, "          - '127.0.0.1:%d'\n", in.Port)
	}
	for name, body := range map[string]string{"haproxy.cfg": hap.String(), "prometheus.yml": prom.String()} {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// buildServerImage compiles the reference server, static, and imports an image that
// holds that binary alone.
func buildServerImage(ctx context.Context, pool *dockertest.Pool, dir string) error {
	bin := filepath.Join(dir, "server")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/pgshard/pgshard/examples/server")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	defer os.Remove(bin)
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "etc/pgshard/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "server", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	repo, tag, _ := strings.Cut(ServerImage, ":")
	return pool.Client.ImportImage(dc.ImportImageOptions{Repository: repo, Tag: tag, Source: "-",
		InputStream: &buf, OutputStream: io.Discard, Context: ctx})
}

// BackendStatus returns HAProxy's status of an instance, such as "UP", "DOWN" or
// "UP 1/2", from its statistics page.
func (s *Stack) BackendStatus(ctx context.Context, name string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/;csv", s.Stats), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", fmt.Errorf("HAProxy's statistics are empty")
	}
	col := -1
	for i, h := range rows[0] {
		if h == "status" {
			col = i
		}
	}
	for _, row := range rows[1:] {
		if len(row) > col && col >= 0 && row[0] == "app" && row[1] == name {
			return row[col], nil
		}
	}
	return "", fmt.Errorf("HAProxy has no server %s", name)
}

// waitBackend waits until HAProxy's status of an instance begins with want.
func (s *Stack) waitBackend(ctx context.Context, name, want string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last string
	var lastErr error
	for {
		st, err := s.BackendStatus(ctx, name)
		if err == nil && strings.HasPrefix(st, want) && !strings.Contains(st, "/") {
			return nil
		}
		last, lastErr = st, err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is %q (%v), not %s", name, last, lastErr, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitBackend waits until HAProxy shows an instance as want ("UP" or "DOWN"), and
// returns when it saw it.
func (s *Stack) WaitBackend(ctx context.Context, name, want string) (time.Time, error) {
	err := s.waitBackend(ctx, name, want, 2*time.Minute)
	return time.Now(), err
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
