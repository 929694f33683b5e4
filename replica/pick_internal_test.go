package replica

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// testSet builds a set of nodes with given statuses and no pools: enough
// for the choosing logic, which never touches a connection.
func testSet(t testing.TB, sts ...status) *Set {
	t.Helper()
	o := testOptions(t)
	s := &Set{name: "test", opts: o, base: time.Now().Add(-time.Second), core: newCore(o)}
	for i, st := range sts {
		st.until = s.core.withUntil(st).until
		n := &node{addr: fmt.Sprintf("node%d", i), weight: 1}
		n.st.Store(&st)
		s.nodes = append(s.nodes, n)
	}
	return s
}

// eligibleReplica is admitted, fresh as of now, checked now.
func eligibleReplica(lsn LSN) status {
	now := time.Second
	return status{checked: now, fresh: now, reachable: true, role: RoleReplica, lagKnown: true, admitted: true, lsn: lsn, checks: 3}
}

func TestPickPrefersLessLoaded(t *testing.T) {
	primary := status{checked: time.Second, reachable: true, role: RolePrimary, admitted: true}
	s := testSet(t, primary, eligibleReplica(100), eligibleReplica(100))
	s.nodes[1].outstanding.Store(10)
	counts := map[string]int{}
	for range 1000 {
		n, _ := s.pick(s.clock(), 0, nil)
		counts[n.addr]++
	}
	// Two replicas: power of two choices always compares both.
	assert.Equal(t, 1000, counts["node2"], "picks = %v, want every pick on the idle node2", counts)
	n, behind := s.pick(s.clock(), 101, nil)
	assert.Nil(t, n, "pick(min past every replica)")
	assert.NotNil(t, behind, "a replica to probe")
	n, _ = s.pick(s.clock(), 0, s.nodes[2])
	assert.Equal(t, s.nodes[1], n, "pick avoiding node2")
}

func TestPickWeights(t *testing.T) {
	s := testSet(t, eligibleReplica(0), eligibleReplica(0), eligibleReplica(0))
	s.nodes[0].weight = 8
	counts := map[string]int{}
	for range 10000 {
		n, _ := s.pick(s.clock(), 0, nil)
		// Keep load proportional to picks, as real queries would.
		counts[n.addr]++
		n.outstanding.Add(1)
		if counts[n.addr]%4 == 0 {
			n.outstanding.Add(-4)
		}
	}
	assert.Greater(t, counts["node0"], 3*counts["node1"], "picks = %v, want node0 (weight 8) picked far more than node1 (weight 1)", counts)
}

func BenchmarkPick(b *testing.B) {
	for _, replicas := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			sts := []status{{checked: time.Second, reachable: true, role: RolePrimary, admitted: true}}
			for range replicas {
				sts = append(sts, eligibleReplica(0))
			}
			s := testSet(b, sts...)
			// Eligible for the whole benchmark.
			for _, n := range s.nodes[1:] {
				st := *n.status()
				st.until = time.Hour
				n.st.Store(&st)
			}
			b.ReportAllocs()
			for b.Loop() {
				n, _ := s.pick(s.clock(), 0, nil)
				if n == nil {
					b.Fatal("no replica picked")
				}
			}
		})
	}
}
