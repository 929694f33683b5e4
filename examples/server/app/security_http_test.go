package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The connection-level defences of the real command: the read-header
// timeout (slowloris) and the per-IP rate limit, on one server started as
// `server -config ... -read-header-timeout 1s -rate 5 -burst 5`.
func TestSlowClientsAndRateLimit(t *testing.T) {
	const headerTimeout = time.Second
	s := serveConfig(t, "-read-header-timeout", headerTimeout.String(), "-rate", "5", "-burst", "5", "-log-level", "warn")
	addr := strings.TrimPrefix(s.base, "http://")
	t.Run("slowloris", func(t *testing.T) { testSlowloris(t, addr, headerTimeout) })
	t.Run("rate limit per client IP", func(t *testing.T) { testRateLimitPerIP(t, s.base) })
}

// A client that sends its headers a byte a second is cut off once the
// read-header timeout has passed, without an answer; one that sends them
// in pieces but within the timeout is served.
func testSlowloris(t *testing.T, addr string, timeout time.Duration) {
	const margin = 2 * time.Second // a shared, noisy machine
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	header := "GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nX-Slow: " + strings.Repeat("z", 60) + "\r\n\r\n"
	var sent atomic.Int64
	go func() {
		for n := range len(header) {
			if _, err := conn.Write([]byte{header[n]}); err != nil {
				return
			}
			sent.Add(1)
			time.Sleep(time.Second)
		}
	}()
	conn.SetReadDeadline(start.Add(timeout + margin + time.Second))
	got, err := io.ReadAll(conn) // until the server closes
	closedAfter := time.Since(start)
	ne, ok := errors.AsType[net.Error](err)
	require.False(t, ok && ne.Timeout(), "the connection is still open %v after it opened: want it closed within the %v header timeout + %v", closedAfter.Round(time.Millisecond), timeout, margin)
	if !errors.Is(err, syscall.ECONNRESET) {
		require.NoError(t, err, "read")
	}
	assert.True(t, closedAfter >= timeout-100*time.Millisecond && closedAfter <= timeout+margin, "closed %v after the connection opened: want the %v header timeout (+ up to %v)", closedAfter.Round(time.Millisecond), timeout, margin)
	// net/http closes with a bare 400 once part of the headers came in.
	assert.True(t, len(got) == 0 || strings.HasPrefix(string(got), "HTTP/1.1 400 ") || strings.HasPrefix(string(got), "HTTP/1.1 408 "), "the slow client got an answer other than 400 or 408: %.100q", got)
	conn.Close()
	if n := int(sent.Load()); assert.Less(t, n, len(header), "the slow client sent its whole request (%d bytes)", n) {
		t.Logf("cut off after %v, %d of %d header bytes sent", closedAfter.Round(time.Millisecond), n, len(header))
	}

	// Slow but within the timeout: five pieces 100 ms apart.
	conn2, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn2.Close()
	conn2.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"
	for i := 0; i < len(req); i += len(req)/5 + 1 {
		_, err := conn2.Write([]byte(req[i:min(len(req), i+len(req)/5+1)]))
		require.NoError(t, err)
		time.Sleep(100 * time.Millisecond)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn2), nil)
	require.NoError(t, err, "a client within the timeout got no answer")
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode, "a client within the timeout: status")
}

// A client above the rate gets 429s with a Retry-After that is honest,
// while a client from another address (127.0.0.2) is served as usual.
func testRateLimitPerIP(t *testing.T, base string) {
	a := &http.Client{Timeout: 10 * time.Second}
	b, err := clientFrom("127.0.0.2")
	require.NoError(t, err)
	res, err := b.Get(base + "/healthz")
	if err != nil {
		t.Skipf("cannot connect from 127.0.0.2: %v", err)
	}
	res.Body.Close()
	get := func(c *http.Client) result {
		t.Helper()
		res, err := c.Get(base + "/users/1")
		require.NoError(t, err)
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return result{res.StatusCode, res.Header, body}
	}
	var served, limited int
	var lastLimited time.Time
	began := time.Now()
	var retryAfter string
	for i := range 12 {
		r := get(a)
		switch r.status {
		case http.StatusNotFound:
			served++
		case http.StatusTooManyRequests:
			limited++
			lastLimited = time.Now()
			r.errorText(t)
			retryAfter = r.header.Get("Retry-After")
			n, err := strconv.Atoi(retryAfter)
			assert.True(t, err == nil && n >= 1 && n <= 2, "request %d: Retry-After %q, want 1 or 2 (seconds)", i, retryAfter)
		default:
			require.FailNowf(t, "unexpected status", "client A, request %d: status %d %q", i, r.status, r.body)
		}
	}
	// The burst of 5, and one more token for every 200 ms the 12 requests
	// took (each 429 closes its connection, so the next one opens another).
	earned := int(time.Since(began) / (200 * time.Millisecond))
	assert.GreaterOrEqual(t, served, 5, "client A: served of 12 at once (the burst)")
	assert.LessOrEqual(t, served, 6+earned, "client A: served of 12 in %v (the burst of 5, and a token per 200 ms)", time.Since(began))
	assert.GreaterOrEqual(t, limited, 1, "client A: limited of 12 at once")
	for i := range 5 {
		r := get(b)
		assert.Equal(t, http.StatusNotFound, r.status, "client B (127.0.0.2), request %d while A is limited: status; body %q; want 404 as usual", i, r.body)
	}
	// A is still limited, unless B's requests took long enough for A's
	// bucket to earn a token (one per 200 ms): a 429 closes its connection,
	// so each of A's requests opens another, slowly on a busy machine.
	if since := time.Since(lastLimited); since < 150*time.Millisecond {
		r := get(a)
		assert.Equal(t, http.StatusTooManyRequests, r.status, "client A %v after its last 429, B's requests in between", since)
	} else {
		t.Logf("client A's check skipped: %v since its last 429, a token earned", since)
	}
	wait, _ := strconv.Atoi(retryAfter)
	time.Sleep(time.Duration(wait) * time.Second)
	assert.Equal(t, http.StatusNotFound, get(a).status, "client A after waiting Retry-After (%ss): status, want served again", retryAfter)
}

// clientFrom returns a client whose connections come from the loopback
// address ip, as a second machine's would.
func clientFrom(ip string) (*http.Client, error) {
	local, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); !net.ParseIP(host).IsLoopback() {
			return nil, fmt.Errorf("dial %s: this test stays on loopback", addr)
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}
