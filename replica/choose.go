package replica

import (
	"math/rand/v2"
	"time"
)

// reason says why a node may not serve a read now, or "" when it may. A
// replica's data is at most lag old when checked and may have aged since, so
// the lag bound is applied to lag plus the check's age: a replica whose
// replay stops right after a good check drops out before it is too stale.
func reason(st *status, o Options, now time.Time) string {
	switch {
	case st.role == RolePrimary:
		return ReasonPrimary
	case !st.reachable:
		return ReasonUnreachable
	case !st.admitted:
		if st.bad == 0 {
			return ReasonRecovering
		}
		if r := lagReason(st, o, 0); r != "" {
			return r
		}
		return ReasonEjected
	}
	age := now.Sub(st.checked)
	if age > 3*o.CheckInterval {
		return ReasonStaleCheck
	}
	if st.primaryDown {
		return ReasonEligible
	}
	return lagReason(st, o, age)
}

// eligibleUntil is the last instant at which st allows a replica read: the
// check goes stale after three intervals, and the data ages past MaxLag
// after MaxLag - lag. It lets pick decide with one comparison.
func (s *Set) eligibleUntil(st *status) time.Duration {
	if reason(st, s.opts, st.checked) != ReasonEligible {
		return 0
	}
	d := 3 * s.opts.CheckInterval
	if !st.primaryDown {
		d = min(d, s.opts.MaxLag-st.lag)
	}
	return st.checked.Sub(s.base) + d
}

// clock returns the set's monotonic clock: cheaper than time.Now, which
// also reads the wall clock.
func (s *Set) clock() time.Duration { return time.Since(s.base) }

func lagReason(st *status, o Options, age time.Duration) string {
	switch {
	case !st.lagKnown:
		return ReasonLagUnknown
	case !st.streaming:
		return ReasonDisconnected
	case st.lag+age > o.MaxLag || st.lagBytes > o.MaxLagBytes:
		return ReasonLagging
	}
	return ReasonEligible
}

// maxCandidates is how many replicas pick considers without allocating.
const maxCandidates = 16

// pick chooses among the eligible replicas whose known position is at least
// min, by power of two random choices on outstanding queries per weight. It
// skips the node avoid (one that just failed). It returns nil when no
// replica qualifies, and whether some eligible replica was behind min.
func (s *Set) pick(now time.Duration, min LSN, avoid *node) (chosen *node, behind *node) {
	var buf [maxCandidates]*node
	cands := buf[:0]
	var behindBuf [maxCandidates]*node
	behinds := behindBuf[:0]
	total := 0
	for _, n := range s.nodes {
		if n == avoid {
			continue
		}
		st := n.status()
		if now > st.until {
			continue
		}
		if st.lsn < min {
			behinds = append(behinds, n)
			continue
		}
		cands = append(cands, n)
		total += n.weight
	}
	if len(cands) == 0 {
		if len(behinds) == 0 {
			return nil, nil
		}
		return nil, leastLoaded(behinds, weightSum(behinds))
	}
	return leastLoaded(cands, total), nil
}

func weightSum(ns []*node) int {
	t := 0
	for _, n := range ns {
		t += n.weight
	}
	return t
}

// leastLoaded draws two nodes by weight and keeps the one with fewer
// outstanding queries per unit of weight.
func leastLoaded(ns []*node, total int) *node {
	if len(ns) == 1 {
		return ns[0]
	}
	a, b := draw(ns, total), draw(ns, total)
	if b == a {
		b = ns[(index(ns, a)+1+rand.IntN(len(ns)-1))%len(ns)]
	}
	if a.outstanding.Load()*int64(b.weight) <= b.outstanding.Load()*int64(a.weight) {
		return a
	}
	return b
}

func draw(ns []*node, total int) *node {
	r := rand.IntN(total)
	for _, n := range ns {
		if r < n.weight {
			return n
		}
		r -= n.weight
	}
	return ns[len(ns)-1]
}

func index(ns []*node, n *node) int {
	for i, m := range ns {
		if m == n {
			return i
		}
	}
	return 0
}

// setPrimary records which node takes writes after a tick.
func (s *Set) setPrimary(primaries []int) {
	switch len(primaries) {
	case 1:
		s.primary.Store(s.nodes[primaries[0]])
		s.split.Store(false)
	case 0:
		s.primary.Store(nil)
		s.split.Store(false)
	default:
		s.primary.Store(nil)
		if !s.split.Swap(true) {
			addrs := make([]string, len(primaries))
			for i, p := range primaries {
				addrs[i] = s.nodes[p].addr
			}
			s.log.Error("split brain: several nodes report primary; writes refused", "nodes", addrs)
		}
	}
}
