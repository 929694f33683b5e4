package pgcluster

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"
)

// The proxy is written here rather than taken from toxiproxy (which the module proxy
// serves, v2.5.0) for two reasons. Toxiproxy's blackhole, the timeout toxic with no
// timeout, drops the bytes it holds, so a healed connection carries a torn protocol
// stream, where a real network partition loses nothing: TCP retransmits once the path
// heals. And, in process, it needs an API server, a Prometheus registry and a logger
// that a test harness has no use for. This one stops reading instead, so that the bytes
// wait in the kernel's socket buffers as they would behind a dead link.

// Lossy's model of a lost TCP segment: it is resent after a retransmission timeout
// that starts at Linux's minimum and doubles with each loss in a row, up to a cap.
const (
	lossFirstRTO = 200 * time.Millisecond
	lossMaxRTO   = 3200 * time.Millisecond
)

// Proxy is a TCP proxy on 127.0.0.1 in front of one node, for faults on the path of the
// clients that connect through it and of those alone: a test gives its DSN to one
// client (one pool, one server instance) and the node's own DSN to the others. It is
// safe for concurrent use. A new Proxy lets everything through; the cluster's Close
// closes it.
//
// A fault applies at once to the connections already open and to those opened later,
// in both directions, until Heal. Blackhole, Sever, Slow and Lossy add up: a slow,
// lossy path can also be blackholed.
type Proxy struct {
	node *Node
	ln   net.Listener
	wg   sync.WaitGroup // the accept loop and every connection's pumps

	mu      sync.Mutex
	faults  faults
	changed chan struct{} // closed, and replaced, when faults change
	links   map[*link]struct{}
	rng     *rand.Rand
	closed  bool
}

type faults struct {
	blackhole bool
	sever     bool
	delay     time.Duration
	loss      float64
}

// link is one proxied connection: a client's and the proxy's own to the node.
type link struct {
	client, upstream net.Conn
	done             chan struct{}
	once             sync.Once
}

// close ends both connections, with a reset rather than an orderly close when reset.
func (l *link) close(reset bool) {
	l.once.Do(func() {
		close(l.done)
		for _, c := range []net.Conn{l.client, l.upstream} {
			if tc, ok := c.(*net.TCPConn); ok && reset {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
	})
}

// Proxy starts a proxy to the node on a free port of 127.0.0.1. See Proxy for what it is for.
func (n *Node) Proxy(ctx context.Context) (*Proxy, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, &NodeError{Node: n.name, Op: "start a proxy to", Err: err}
	}
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	p := &Proxy{node: n, ln: ln, changed: make(chan struct{}), links: map[*link]struct{}{},
		rng: rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))}
	if n.cluster != nil && !n.cluster.addProxy(p) {
		_ = ln.Close()
		return nil, &NodeError{Node: n.name, Op: "start a proxy to", Err: ErrClosed}
	}
	p.wg.Go(p.accept)
	return p, nil
}

// Port returns the proxy's port on 127.0.0.1.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// DSN is like the node's DSN, through the proxy.
func (p *Proxy) DSN() string {
	n := p.node
	return dsn(n.user, n.password, p.Port(), n.database)
}

// SuperDSN is like the node's SuperDSN, through the proxy.
func (p *Proxy) SuperDSN() string {
	n := p.node
	return dsn(superuser, n.password, p.Port(), n.database)
}

// String names the proxy and its node.
func (p *Proxy) String() string {
	return fmt.Sprintf("proxy 127.0.0.1:%d to %s", p.Port(), p.node.name)
}

// Blackhole stops every byte in both directions, as a link that went dead: the sockets
// stay open and clients see no error, only silence (new connections are accepted, but
// their startup is not answered). Nothing is lost: the bytes wait, and flow on Heal,
// as TCP would retransmit them when a partition heals.
func (p *Proxy) Blackhole() { p.set(func(f *faults) { f.blackhole = true }) }

// Sever closes every proxied connection now, with a TCP reset, and resets each new one
// as soon as it is accepted, until Heal.
func (p *Proxy) Sever() {
	p.set(func(f *faults) { f.sever = true })
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
	}
}

// Slow delays every chunk of bytes by d in each direction, in order: a link with d of
// extra latency each way. Zero removes the delay.
func (p *Proxy) Slow(d time.Duration) { p.set(func(f *faults) { f.delay = max(d, 0) }) }

// Lossy makes the path lose each chunk of bytes with probability prob, as a link that
// drops that fraction of TCP segments: the chunk is held for a retransmission timeout,
// 200 ms, doubled for each loss in a row in that direction (at most 3.2 s), and then
// delivered. So nothing is torn or dropped for good: a lossy path is a slow, jittery
// one, and the clients' own deadlines decide what fails. Zero removes the loss; prob is
// clamped to [0, 1].
func (p *Proxy) Lossy(prob float64) {
	p.set(func(f *faults) { f.loss = min(max(prob, 0), 1) })
}

// Heal removes every fault: held bytes flow, and new connections are proxied again.
func (p *Proxy) Heal() { p.set(func(f *faults) { *f = faults{} }) }

// Close closes the proxy and every connection through it. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) set(change func(*faults)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	change(&p.faults)
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // out of descriptors, say: try again
			continue
		}
		p.mu.Lock()
		refuse := p.closed || p.faults.sever
		p.mu.Unlock()
		if refuse {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// serve connects client to the node and pumps bytes both ways until either side closes.
func (p *Proxy) serve(client net.Conn) {
	up, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.node.Port())), 3*time.Second)
	if err != nil {
		if tc, ok := client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // the client sees a refusal, as from the node itself
		}
		_ = client.Close()
		return
	}
	l := &link{client: client, upstream: up, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed || p.faults.sever {
		p.mu.Unlock()
		l.close(true)
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.pump(l, client, up) })
	wg.Go(func() { p.pump(l, up, client) })
	wg.Wait()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// pump copies from src to dst, one chunk at a time, as the faults allow. It waits for
// the path to open before it reads, so that a blackholed path leaves the bytes in the
// kernel's buffers and the sender's writes block once they are full.
func (p *Proxy) pump(l *link, src, dst net.Conn) {
	defer l.close(false)
	buf := make([]byte, 32<<10)
	rto := time.Duration(0) // the retransmission timeout of the next loss; 0: no loss in a row
	for {
		if !p.await(l) {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !p.sleep(l, p.holdFor(&rto)) || !p.await(l) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// holdFor returns how long to hold a chunk: the delay, plus a retransmission timeout
// if it is lost.
func (p *Proxy) holdFor(rto *time.Duration) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.faults.delay
	if p.faults.loss > 0 && p.rng.Float64() < p.faults.loss {
		*rto = min(max(2**rto, lossFirstRTO), lossMaxRTO)
		d += *rto
	} else {
		*rto = 0
	}
	return d
}

// await waits while the path is blackholed; false when the link or proxy closed.
func (p *Proxy) await(l *link) bool {
	for {
		p.mu.Lock()
		hole, changed := p.faults.blackhole, p.changed
		p.mu.Unlock()
		if !hole {
			select {
			case <-l.done:
				return false
			default:
				return true
			}
		}
		select {
		case <-l.done:
			return false
		case <-changed:
		}
	}
}

func (p *Proxy) sleep(l *link, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.done:
		return false
	case <-t.C:
		return true
	}
}
