package app

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A connection flood from one address: thousands of keep-alive
// connections, half of them with one request each against a low rate
// limit, half of them silent. The server holds at most its per-address cap
// of them (the others are answered 429 and closed at once; the rate
// limit's 429s close theirs too), so its descriptors stay bounded, and
// clients from other addresses are still served. Their p99 latency during the flood is
// logged as a figure (BENCHMARKS.md), not asserted: this machine is shared.
func TestConnectionFloodFromOneAddress(t *testing.T) {
	const (
		flood   = 3000 // connections the flooder opens and keeps
		perIP   = 64
		total   = 1024
		workers = 100
		others  = 6 // clients from other addresses, each within the rate
	)
	s := serveConfig(t, "-rate", "5", "-burst", "5", "-max-conns-per-ip", strconv.Itoa(perIP),
		"-max-conns", strconv.Itoa(total), "-log-level", "error")
	addr := strings.TrimPrefix(s.base, "http://")
	_, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	if _, err := serverSockets(port); err != nil {
		t.Skipf("cannot read the socket table: %v", err)
	}

	// The server's open sockets (those holding a descriptor), sampled.
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			if n, err := serverSockets(port); err == nil && int64(n) > peak.Load() {
				peak.Store(int64(n))
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})

	// Other clients, each from an address of its own, at 4 requests a second.
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []string
	)
	floodDone := make(chan struct{})
	var wg sync.WaitGroup
	for i := range others {
		c, err := clientFrom(fmt.Sprintf("127.0.1.%d", i+1))
		require.NoError(t, err)
		wg.Go(func() {
			for {
				start := time.Now()
				res, err := c.Get(s.base + "/users/1")
				d := time.Since(start)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case res.StatusCode != http.StatusNotFound:
					failures = append(failures, "status "+res.Status)
				default:
					latencies = append(latencies, d)
				}
				mu.Unlock()
				if err == nil {
					res.Body.Close()
				}
				select {
				case <-floodDone:
					return
				case <-time.After(250 * time.Millisecond):
				}
			}
		})
	}

	// The flood, from 127.0.0.2: connections kept open after their answer.
	local := &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}
	dialer := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	var (
		conns                     sync.Map
		answered, refused, closed atomic.Int64
		dialErrs                  atomic.Int64
	)
	jobs := make(chan int)
	var fw sync.WaitGroup
	for range workers {
		fw.Go(func() {
			for i := range jobs {
				c, err := dialer.DialContext(context.Background(), "tcp", addr)
				if err != nil {
					dialErrs.Add(1)
					continue
				}
				conns.Store(i, c)
				if i%2 == 1 {
					continue // silent: it only holds a connection
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "GET /users/%d HTTP/1.1\r\nHost: %s\r\n\r\n", i+1, addr)
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					closed.Add(1) // closed before an answer
					continue
				}
				res.Body.Close()
				answered.Add(1)
				if res.StatusCode == http.StatusTooManyRequests {
					refused.Add(1)
					assert.True(t, res.Close, "a 429 says Connection: close")
				}
			}
		})
	}
	began := time.Now()
	for i := range flood {
		jobs <- i
	}
	close(jobs)
	fw.Wait()
	floodTook := time.Since(began)
	time.Sleep(500 * time.Millisecond) // the other clients, still during the flood's connections
	close(floodDone)
	wg.Wait()
	close(stopSampling)
	sampler.Wait()
	held, _ := serverSockets(port)
	conns.Range(func(_, c any) bool { c.(net.Conn).Close(); return true })

	slices.Sort(latencies)
	p99 := time.Duration(0)
	if len(latencies) > 0 {
		p99 = latencies[(len(latencies)*99+99)/100-1]
	}
	t.Logf("flood: %d connections from 127.0.0.2 in %v (%d dial errors), half of them silent: %d requests answered (%d of them 429), %d closed unanswered; "+
		"server sockets: peak %d, %d while the flood's connections were still open",
		flood, floodTook.Round(time.Millisecond), dialErrs.Load(), answered.Load(), refused.Load(), closed.Load(), peak.Load(), held)
	t.Logf("other clients during the flood: %d requests, p99 %v, slowest %v, %d failed",
		len(latencies), p99.Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond), len(failures))

	assert.Empty(t, failures, "other clients' failed requests")
	assert.NotEmpty(t, latencies, "other clients' requests")
	assert.Equal(t, int64(flood/2), answered.Load()+closed.Load(), "every flood request answered or closed")
	assert.Zero(t, dialErrs.Load(), "flood connections that could not even connect")
	assert.Greater(t, refused.Load(), int64(flood/4), "flood requests refused 429")
	// The flood's open connections are at most its cap; with the other
	// clients', and those being refused, far fewer than the flood's.
	assert.LessOrEqual(t, held, perIP+others+workers, "server sockets while the flood's connections are open")
	assert.LessOrEqual(t, peak.Load(), int64(perIP+others+workers), "server sockets at the peak")
}

// serverSockets counts the TCP sockets on the local port that hold a
// descriptor in the server, from /proc/net/tcp: established or closing on
// the client's side, and accepted (a connection still in the listen
// backlog has no inode yet). The flood's own client sockets are the other
// end, on ports of their own.
func serverSockets(port int) (int, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !strings.HasSuffix(fields[1], want) || fields[9] == "0" {
			continue
		}
		switch fields[3] {
		case "01", "08": // ESTABLISHED, CLOSE_WAIT
			n++
		}
	}
	return n, sc.Err()
}
