package replica

import (
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// testSet builds a set of nodes with given statuses and no pools: enough
// for the choosing logic, which never touches a connection.
func testSet(t testing.TB, sts ...status) *Set {
	t.Helper()
	opts, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := &Set{name: "test", opts: opts, now: time.Now, base: time.Now().Add(-time.Second)}
	for i, st := range sts {
		st.until = s.eligibleUntil(&st)
		n := &node{addr: fmt.Sprintf("node%d", i), weight: 1}
		n.st.Store(&st)
		s.nodes = append(s.nodes, n)
	}
	return s
}

func TestReason(t *testing.T) {
	now := time.Now()
	fresh := status{checked: now, reachable: true, role: RoleReplica, lagKnown: true, streaming: true, admitted: true, checks: 3, good: 3}
	with := func(f func(*status)) status { s := fresh; f(&s); return s }
	tests := []struct {
		name string
		st   status
		want string
	}{
		{"caught up", fresh, ReasonEligible},
		{"primary", with(func(s *status) { s.role = RolePrimary }), ReasonPrimary},
		{"unreachable", with(func(s *status) { s.reachable = false }), ReasonUnreachable},
		{"lag at the bound", with(func(s *status) { s.lag = time.Second - 10*time.Millisecond }), ReasonEligible},
		{"lag past the bound", with(func(s *status) { s.lag = time.Second + time.Millisecond }), ReasonLagging},
		{"lag plus check age past the bound", with(func(s *status) { s.lag = 900 * time.Millisecond; s.checked = now.Add(-200 * time.Millisecond) }), ReasonLagging},
		{"bytes past the bound", with(func(s *status) { s.lagBytes = 16<<20 + 1 }), ReasonLagging},
		{"stale check", with(func(s *status) { s.checked = now.Add(-751 * time.Millisecond) }), ReasonStaleCheck},
		{"lag unknown", with(func(s *status) { s.lagKnown = false }), ReasonLagUnknown},
		{"receiver down", with(func(s *status) { s.streaming = false }), ReasonDisconnected},
		{"primary down, caught up", with(func(s *status) { s.lagKnown = false; s.streaming = false; s.primaryDown = true }), ReasonEligible},
		{"not yet admitted", with(func(s *status) { s.admitted = false; s.good = 1 }), ReasonRecovering},
		{"ejected for lag", with(func(s *status) { s.admitted = false; s.bad = 1; s.good = 0; s.lag = 2 * time.Second }), ReasonLagging},
	}
	s := testSet(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := reason(&tc.st, s.opts, now); got != tc.want {
				t.Errorf("reason = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPickPrefersLessLoaded(t *testing.T) {
	now := time.Now()
	ok := status{checked: now, reachable: true, role: RoleReplica, lagKnown: true, streaming: true, admitted: true, lsn: 100}
	s := testSet(t, status{checked: now, reachable: true, role: RolePrimary, admitted: true}, ok, ok)
	s.nodes[1].outstanding.Store(10)
	counts := map[string]int{}
	for range 1000 {
		n, _ := s.pick(s.clock(), 0, nil)
		counts[n.addr]++
	}
	// Two replicas: power of two choices always compares both.
	if counts["node2"] != 1000 {
		t.Errorf("picks = %v, want every pick on the idle node2", counts)
	}
	if n, behind := s.pick(s.clock(), 101, nil); n != nil || behind == nil {
		t.Errorf("pick(min past every replica) = %v, %v; want none and a replica to probe", n, behind)
	}
	if n, _ := s.pick(s.clock(), 0, s.nodes[2]); n != s.nodes[1] {
		t.Errorf("pick avoiding node2 = %v, want node1", n)
	}
}

func TestPickWeights(t *testing.T) {
	now := time.Now()
	ok := status{checked: now, reachable: true, role: RoleReplica, lagKnown: true, streaming: true, admitted: true}
	s := testSet(t, ok, ok, ok)
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
	if counts["node0"] < 3*counts["node1"] {
		t.Errorf("picks = %v, want node0 (weight 8) picked far more than node1 (weight 1)", counts)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, replicas := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			now := time.Now()
			sts := []status{{checked: now, reachable: true, role: RolePrimary, admitted: true}}
			for range replicas {
				sts = append(sts, status{checked: now, reachable: true, role: RoleReplica, lagKnown: true, streaming: true, admitted: true})
			}
			s := testSet(b, sts...)
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

// A primary whose check times out once keeps its role; twice in a row, or
// refusing connections, it does not.
func TestSlowPrimaryCheck(t *testing.T) {
	now := time.Now()
	s := testSet(t,
		status{checked: now, reachable: true, role: RolePrimary, admitted: true, checks: 5},
		status{checked: now, reachable: true, role: RoleReplica, lagKnown: true, streaming: true, admitted: true, checks: 5})
	s.log = slog.New(slog.DiscardHandler)
	s.hist = newHistory(8)
	s.primary.Store(s.nodes[0])
	slow := []probe{{slow: true, err: "timeout", at: now}, {ok: true, inRecov: true, streaming: true, at: now}}

	s.apply(slow)
	if s.primary.Load() != s.nodes[0] || !s.nodes[0].status().reachable {
		t.Fatal("one slow check cleared the primary")
	}
	if got := s.nodes[1].status().checks; got != 5 {
		t.Errorf("the replica was re-judged during the slow tick (checks %d, want 5)", got)
	}
	s.apply(slow)
	if s.primary.Load() != nil {
		t.Error("two slow checks in a row kept the primary")
	}

	s.nodes[0].st.Store(&status{checked: now, reachable: true, role: RolePrimary, admitted: true})
	s.primary.Store(s.nodes[0])
	s.apply([]probe{{err: "connection refused", at: now}, slow[1]})
	if s.primary.Load() != nil {
		t.Error("a refused check kept the primary")
	}
}
