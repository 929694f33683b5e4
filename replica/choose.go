package replica

import (
	"math/rand/v2"
	"time"
)

// clock returns the set's monotonic clock: cheaper than time.Now, which
// also reads the wall clock.
func (s *Set) clock() time.Duration { return time.Since(s.base) }

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
