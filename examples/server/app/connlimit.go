package app

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"
)

// Connection limits. Each connection holds a file descriptor until it is
// closed, and a flood of idle keep-alive connections from one client would
// otherwise take every descriptor the process has: the server would then
// fail to accept anyone. Two caps hold: per client address, a connection
// over the cap is answered 429 and closed at once (the client is not kept
// waiting, and others are not); in total, Accept waits for a connection to
// close (netutil.LimitListener), so the process never holds more.

// tooManyConnections is the whole answer to a connection over its
// client's cap: written straight to the socket, since no request has been
// read.
func tooManyConnections() []byte {
	const body = `{"error":"too many connections from this address; close idle ones and retry"}` + "\n"
	return []byte("HTTP/1.1 429 Too Many Requests\r\n" +
		"Content-Type: application/json\r\n" +
		"Connection: close\r\n" +
		"Retry-After: 1\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

// connLimits wraps a listener with the per-address and total caps; a cap
// of 0 or less is no cap.
func connLimits(ln net.Listener, perAddr, total int) *limitedListener {
	l := &limitedListener{inner: ln, perAddr: perAddr, open: map[string]int{}}
	l.Listener = l.inner
	if perAddr > 0 {
		l.Listener = &perAddrListener{l}
	}
	if total > 0 {
		l.Listener = netutil.LimitListener(l.Listener, total)
	}
	return l
}

// limitedListener is a listener under connection caps. It is safe for
// concurrent use.
type limitedListener struct {
	net.Listener // the outermost wrapper: what the server accepts from
	inner        net.Listener
	perAddr      int

	mu       sync.Mutex
	open     map[string]int // open connections per client address
	refused  atomic.Uint64  // connections answered 429 and closed
	accepted atomic.Uint64
	current  atomic.Int64
}

// perAddrListener accepts connections from inner, refusing those over
// their address's cap.
type perAddrListener struct{ l *limitedListener }

func (p *perAddrListener) Accept() (net.Conn, error) {
	l := p.l
	for {
		c, err := l.inner.Accept()
		if err != nil {
			return nil, err
		}
		host := hostOf(c.RemoteAddr())
		l.mu.Lock()
		over := l.open[host] >= l.perAddr
		if !over {
			l.open[host]++
		}
		l.mu.Unlock()
		if over {
			l.refused.Add(1)
			refuse(c)
			continue
		}
		l.accepted.Add(1)
		l.current.Add(1)
		return &countedConn{Conn: c, release: func() { l.release(host) }}, nil
	}
}

func (p *perAddrListener) Close() error   { return p.l.inner.Close() }
func (p *perAddrListener) Addr() net.Addr { return p.l.inner.Addr() }

func (l *limitedListener) release(host string) {
	l.current.Add(-1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
	}
}

// collectors are the listener's figures for /metrics.
func (l *limitedListener) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pgshard_http_connections_refused_total",
			Help: "Connections answered 429 and closed at once: their client address had -max-conns-per-ip open."},
			func() float64 { return float64(l.refused.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pgshard_http_connections_open",
			Help: "Client connections open (counted when -max-conns-per-ip is set)."},
			func() float64 { return float64(l.current.Load()) }),
	}
}

// refuse answers 429 on a connection it did not serve, and closes it, at
// once: the answer fits in a fresh socket's send buffer, so the write does
// not wait for the client to read (the deadline is a guard), and refusing
// inline keeps the refused connections' descriptors to one at a time.
func refuse(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write(tooManyConnections())
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite() // the answer first, then the end: no reset that could drop it
	}
	c.Close()
}

// countedConn releases its address's slot once, when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
