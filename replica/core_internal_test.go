package replica

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ms = time.Millisecond

func testOptions(t testing.TB) Options {
	t.Helper()
	o, err := Options{}.withDefaults()
	require.NoError(t, err)
	return o
}

// okPrimary and okReplica are probes that answered.
func okPrimary(at time.Duration, pos LSN) probe {
	return probe{kind: probeOK, sent: at, at: at, lsn: pos, sysid: 7, tli: 1}
}

func okReplica(at time.Duration, pos LSN) probe {
	return probe{kind: probeOK, sent: at, at: at, inRecov: true, lsn: pos, sysid: 7, tli: 1}
}

// TestHealthTransitions walks the health machine through named sequences
// of probes and checks where each ends.
func TestHealthTransitions(t *testing.T) {
	o := testOptions(t)
	type round struct {
		dt     time.Duration
		probes []probe // primary, replica
	}
	at := func(k probeKind) probe { return probe{kind: k, err: k.String()} }
	tests := []struct {
		name        string
		rounds      func(now time.Duration) []probe
		n           int
		wantPrimary bool // the primary still takes writes
		wantReplica string
	}{
		{"healthy", func(now time.Duration) []probe { return []probe{okPrimary(now, 100), okReplica(now, 100)} }, 5, true, ReasonEligible},
		{"lost sessions are no evidence", func(now time.Duration) []probe { return []probe{at(probeLost), okReplica(now, 100)} }, 5, true, ""},
		{"dials in progress are no evidence", func(now time.Duration) []probe { return []probe{at(probePending), okReplica(now, 100)} }, 20, true, ""},
		{"busy (too many connections) is up", func(now time.Duration) []probe { return []probe{at(probeBusy), okReplica(now, 100)} }, 20, true, ""},
		{"two failed fresh checks keep the primary", func(now time.Duration) []probe { return []probe{at(probeFailed), okReplica(now, 100)} }, primaryFailAfter - 1, true, ""},
		{"three failed fresh checks demote it", func(now time.Duration) []probe { return []probe{at(probeFailed), okReplica(now, 100)} }, primaryFailAfter, false, ""},
		{"one refusal demotes it", func(now time.Duration) []probe { return []probe{at(probeDown), okReplica(now, 100)} }, 1, false, ""},
		{"replica ahead of a foreign system is refused", func(now time.Duration) []probe {
			r := okReplica(now, 1<<40)
			r.sysid = 8
			return []probe{okPrimary(now, 100), r}
		}, 5, true, ReasonForeign},
		{"replica on another timeline is refused", func(now time.Duration) []probe {
			r := okReplica(now, 100)
			r.tli = 2
			return []probe{okPrimary(now, 100), r}
		}, 5, true, ReasonForeign},
		{"paused replica leaves at MaxLag", func(now time.Duration) []probe {
			return []probe{okPrimary(now, LSN(100+now/ms)), okReplica(now, 100)}
		}, 6, true, ReasonLagging},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(o)
			sts := make([]status, 2)
			now := time.Duration(0)
			// Start healthy: the primary seen, the replica admitted.
			sts, _ = c.step(now, sts, []probe{okPrimary(now, 100), okReplica(now, 100)})
			for range tc.n {
				now += 250 * ms
				sts, _ = c.step(now, sts, tc.rounds(now))
			}
			assert.Equal(t, tc.wantPrimary, c.primary == 0 && !sts[0].down, "primary takes writes (status %+v)", sts[0])
			if tc.wantReplica != "" {
				assert.Equal(t, tc.wantReplica, c.reason(&sts[1], now), "replica reason (status %+v)", sts[1])
			}
		})
	}
}

// Losing the primary's samples (a blip, or this process cut off from it)
// never re-admits a paused replica: its lag bound only grows.
func TestLagBoundGrowsWithoutPrimarySamples(t *testing.T) {
	o := testOptions(t)
	c := newCore(o)
	sts := make([]status, 2)
	now := time.Duration(0)
	for i := range 40 { // 10 s with replay paused at 100 while the primary writes
		now = time.Duration(i) * 250 * ms
		sts, _ = c.step(now, sts, []probe{okPrimary(now, LSN(100+i)), okReplica(now, 100)})
	}
	require.Equal(t, ReasonLagging, c.reason(&sts[1], now))
	for range 8 { // the primary blips: no samples
		now += 250 * ms
		sts, _ = c.step(now, sts, []probe{{kind: probeLost, err: "lost"}, okReplica(now, 100)})
		require.NotEqual(t, ReasonEligible, c.reason(&sts[1], now), "re-admitted while no primary sample arrived")
		require.Greater(t, sts[1].lag(now), 9*time.Second)
	}
	// A caught-up replica of a primary that stops answering leaves rotation
	// at MaxLag after the last sample.
	c = newCore(o)
	sts = make([]status, 2)
	sts, _ = c.step(0, sts, []probe{okPrimary(0, 100), okReplica(0, 100)})
	last := time.Duration(0)
	for now := 250 * ms; now < 3*time.Second; now += 250 * ms {
		sts, _ = c.step(now, sts, []probe{{kind: probePending}, okReplica(now, 100)})
		if c.reason(&sts[1], now) == ReasonEligible {
			last = now
		}
		assert.LessOrEqual(t, sts[1].until, 0+o.MaxLag, "until past the last sample plus MaxLag")
	}
	assert.LessOrEqual(t, last, o.MaxLag)
}

// world is the truth that TestCoreInvariants checks the core against: every
// commit with its instant and position, and each replica's replay.
type world struct {
	rnd     *rand.Rand
	now     time.Duration
	commits []sample
	lsn     LSN
	primary int
	replay  []LSN
	paused  []bool
	// evidence against each node since its last good check
	failed  []int
	refused []bool
}

// lsnAt is the primary's position at instant t: past every commit by t.
func (w *world) lsnAt(t time.Duration) LSN {
	pos := LSN(1)
	for _, c := range w.commits {
		if c.at <= t {
			pos = c.pos
		}
	}
	return pos
}

// staleness is how old the data of a replica at position r is at t: the
// age of the oldest commit by t that it does not have.
func (w *world) staleness(r LSN, t time.Duration) time.Duration {
	for _, c := range w.commits {
		if c.at <= t && c.pos > r {
			return t - c.at
		}
	}
	return 0
}

func (w *world) advance() {
	dt := time.Duration(w.rnd.IntN(300)) * ms
	if w.rnd.IntN(20) == 0 {
		dt = time.Duration(2+w.rnd.IntN(8)) * time.Second // a clock jump, or a process paused
	}
	for range w.rnd.IntN(4) {
		w.lsn += LSN(1 + w.rnd.IntN(1000))
		w.commits = append(w.commits, sample{at: w.now + time.Duration(w.rnd.Int64N(int64(dt)+1)), pos: w.lsn})
	}
	w.now += dt
	if len(w.commits) > 0 && w.commits[len(w.commits)-1].at > w.now {
		w.commits[len(w.commits)-1].at = w.now
	}
	for i := range w.replay {
		if w.rnd.IntN(10) == 0 {
			w.paused[i] = !w.paused[i]
		}
		if !w.paused[i] && i != w.primary {
			delay := time.Duration(w.rnd.IntN(400)) * ms
			w.replay[i] = max(w.replay[i], w.lsnAt(w.now-delay))
		}
	}
}

func (w *world) probe(i int) probe {
	r := w.rnd.IntN(100)
	kind := probeOK
	switch {
	case r < 5:
		kind = probePending
	case r < 10:
		kind = probeLost
	case r < 15:
		kind = probeFailed
	case r < 17:
		kind = probeDown
	case r < 20:
		kind = probeBusy
	}
	switch kind {
	case probeOK:
		w.failed[i], w.refused[i] = 0, false
	case probeFailed:
		w.failed[i]++
	case probeDown:
		w.failed[i]++
		w.refused[i] = true
	}
	if kind != probeOK {
		return probe{kind: kind, sent: w.now, at: w.now, err: kind.String()}
	}
	sent := w.now - time.Duration(w.rnd.IntN(50))*ms
	p := probe{kind: probeOK, sent: sent, at: w.now, sysid: 7, tli: 1}
	switch {
	case i == w.primary:
		// The position is read at some instant between sending and answering.
		p.lsn = w.lsnAt(sent + time.Duration(w.rnd.Int64N(int64(w.now-sent)+1)))
	case i == len(w.replay)-1:
		// A replica of another shard, far ahead.
		p.inRecov, p.sysid, p.lsn = true, 8, w.lsn+1<<32
	default:
		p.inRecov, p.lsn = true, w.replay[i]
	}
	return p
}

// TestCoreInvariants drives the core with random probe sequences (lost
// primary samples, timeouts, refusals, clock jumps, a promotion, a replica
// of another system far ahead) and checks the invariants of the package
// documentation after every step, against the truth of every commit:
//   - a replica is eligible only while the data it holds is at most MaxLag
//     old, at every instant up to the end of its eligibility;
//   - the primary is demoted only on evidence (a refusal, or
//     primaryFailAfter failed fresh checks in a row), and a primary that
//     answers its check takes writes;
//   - a replica of another system is never eligible.
func TestCoreInvariants(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		checkInvariants(t, uint64(seed), 200)
	}
}

func FuzzCoreInvariants(f *testing.F) {
	f.Add(uint64(1), uint8(100))
	f.Fuzz(func(t *testing.T, seed uint64, steps uint8) { checkInvariants(t, seed, int(steps)) })
}

func checkInvariants(t *testing.T, seed uint64, steps int) {
	o := testOptions(t)
	const nodes = 4 // primary, two replicas, a foreign replica
	w := &world{rnd: rand.New(rand.NewPCG(seed, 1)), replay: make([]LSN, nodes), paused: make([]bool, nodes),
		failed: make([]int, nodes), refused: make([]bool, nodes), lsn: 1}
	c := newCore(o)
	sts := make([]status, nodes)
	for step := range steps {
		w.advance()
		if step == steps/2 && w.rnd.IntN(2) == 0 {
			// Promotion: replica 1 takes over with what it had; the old
			// primary is gone.
			w.primary = 1
			w.lsn = w.replay[1]
			var kept []sample
			for _, cm := range w.commits {
				if cm.pos <= w.lsn {
					kept = append(kept, cm)
				}
			}
			w.commits = kept
		}
		probes := make([]probe, nodes)
		for i := range probes {
			probes[i] = w.probe(i)
			if w.primary == 1 && i == 0 {
				probes[i] = probe{kind: probeDown, sent: w.now, at: w.now, err: "refused"}
				w.refused[0] = true
			}
		}
		sts, _ = c.step(w.now, sts, probes)
		ctx := fmt.Sprintf("seed %d step %d", seed, step)

		p := w.primary
		if probes[p].kind == probeOK {
			require.Equal(t, p, c.primary, "%s: the primary answered but does not take writes", ctx)
			require.False(t, sts[p].down, "%s: the primary answered but is down", ctx)
		}
		if c.primary == p && sts[p].down {
			require.True(t, w.refused[p] || w.failed[p] >= primaryFailAfter,
				"%s: primary demoted without evidence (failed %d)", ctx, w.failed[p])
		}
		for i := range nodes {
			st := &sts[i]
			if i == p || st.until == 0 {
				continue
			}
			require.NotEqual(t, nodes-1, i, "%s: the foreign replica is eligible", ctx)
			require.Equal(t, RoleReplica, st.role)
			// At every instant it may serve, its data is within MaxLag.
			for _, dt := range []time.Duration{0, 100 * ms, 500 * ms, time.Second, 2 * time.Second} {
				at := w.now + dt
				if at > st.until {
					break
				}
				got := w.staleness(st.lsn, at)
				require.LessOrEqual(t, got, o.MaxLag, "%s: node %d eligible at +%s with data %s old", ctx, i, dt, got)
			}
		}
	}
}

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want errClass
	}{
		{"nil", context.Background(), nil, errNone},
		{"connection refused", context.Background(), fmt.Errorf("connect: %w", refused), errDown},
		{"starting up", context.Background(), &pgconn.PgError{Code: "57P03"}, errDown},
		{"terminated backend", context.Background(), &pgconn.PgError{Code: "57P01"}, errLost},
		{"reset", context.Background(), &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, errLost},
		{"EOF", context.Background(), fmt.Errorf("receive message: %w", io.EOF), errLost},
		{"i/o timeout", context.Background(), &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, errLost},
		{"too many connections", context.Background(), &pgconn.PgError{Code: "53300"}, errBusy},
		{"bad password", context.Background(), &pgconn.PgError{Code: "28P01"}, errBusy},
		{"unique violation", context.Background(), &pgconn.PgError{Code: "23505"}, errStatement},
		{"server error without a code", context.Background(), &pgconn.PgError{}, errStatement},
		{"caller cancelled", canceled, fmt.Errorf("x: %w", context.Canceled), errCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, classify(tc.ctx, tc.err))
		})
	}
}
