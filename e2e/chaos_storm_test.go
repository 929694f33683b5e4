package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/internal/pgcluster"
)

// 1. Replica lag storm: every 500 ms, replay is paused on a random replica
// that replays, or resumed on one that is paused. No client may see an
// error or a read-your-writes violation, and no read may be served by a
// replica whose true lag is past MaxLag.
func chaosLagStorm(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Replica lag storm"}
	a := e.server("a", 101, nil, nil)
	var replicas []*pgcluster.Node
	for _, sh := range e.c.Shards() {
		replicas = append(replicas, sh.Replicas...)
	}

	warm := min(e.len.warm, 3*time.Second)
	lr := e.load(0, a)
	stop := e.bystanders(3, a)
	defer stop()
	time.Sleep(warm)
	began := e.mark("storm begins: every 500 ms, pause or resume replay on a random one of the 4 replicas")
	eps := e.replayStorm(replicas, e.len.storm)
	ended := e.mark("storm ends: %d pauses; every replica replays again", len(eps))
	e.await(20*time.Second, func() bool {
		for _, n := range replicas {
			if _, ok := a.stats.first(ended, nodeEligible(n.Port())); !ok {
				return false
			}
		}
		return true
	})
	time.Sleep(min(e.len.after, 2*time.Second))
	rep := lr.end(t)
	stop()
	e.clients(res, rep)

	f := pauseFigures(a.stats, eps, ended)
	lc := e.checkReplicaReads(began.Add(-warm), ended.Add(2*time.Second), chaosMaxLag, nil)
	whilePaused := e.readsWhile(func(port int, at time.Time) bool {
		return slices.ContainsFunc(eps, func(ep replayEpisode) bool {
			return ep.n.Port() == port && !at.Before(ep.paused) && at.Before(ep.resumed)
		})
	})
	obs := e.tl.all(nil)
	errs := filterObs(obs, (*chaosObs).isError)
	res.Injected = fmt.Sprintf("replay paused or resumed on a random one of the 4 replicas every 500 ms for %s: %d pauses, the longest %s; %d loadgen clients and 3 token-less readers",
		fmtDur(e.len.storm), len(eps), fmtDur(f.longest), e.len.clients)
	res.Saw = fmt.Sprintf("%d errors; %d replica reads checked, %d of them served by a replica while its replay was paused; every served read's true lag at most %s (bound %s)",
		len(errs), lc.reads, whilePaused, fmtDur(lc.max), fmtDur(chaosMaxLag))
	res.Detect = fmt.Sprintf("pause -> replica out of rotation: median %s, max %s (%d pauses; %d shorter ones ended first)",
		fmtDur(median(f.detect)), fmtDur(slices.Max(append(f.detect, 0))), len(f.detect), f.short)
	res.Recover = fmt.Sprintf("resume -> back in rotation: median %s, max %s (%d)", fmtDur(median(f.recover)),
		fmtDur(slices.Max(append(f.recover, 0))), len(f.recover))
	e.expectAvailable(res, errs, "no errors", fmt.Sprint(len(errs)))
	e.expect(res, lc.beyond == 0, "0 reads served by a replica beyond the lag bound",
		fmt.Sprintf("%d of %d (largest lag: at most %s, at least %s)", lc.beyond, lc.reads, fmtDur(lc.max), fmtDur(lc.maxFloor)))
	e.noteLag(res, lc)
	res.note("Time to detect: from the pause (PauseReplay returned) to the first router sample showing the replica ineligible. A paused replica may serve until its data is MaxLag old, so this is about MaxLag minus the time since its last replayed commit, by design.")
	res.note("Time to recover: from ResumeReplay returning to the first sample showing it eligible again (catch-up, then AdmitAfter = 2 good checks).")
	return res
}

// replayEpisode is a pause of one replica's replay.
type replayEpisode struct {
	n               *pgcluster.Node
	paused, resumed time.Time
}

// replayStorm pauses replay on a random replica that replays, or resumes
// it on one that is paused, every 500 ms for d; then resumes every paused
// one. It returns the pauses.
func (e *chaosEnv) replayStorm(replicas []*pgcluster.Node, d time.Duration) (eps []replayEpisode) {
	ctx := context.Background()
	paused := map[*pgcluster.Node]time.Time{}
	defer func() {
		for n, at := range paused {
			assert.NoError(e.t, n.ResumeReplay(ctx))
			eps = append(eps, replayEpisode{n, at, time.Now()})
		}
	}()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); {
		<-tick.C
		n := replicas[rng.IntN(len(replicas))]
		if at, ok := paused[n]; ok {
			require.NoError(e.t, n.ResumeReplay(ctx))
			eps = append(eps, replayEpisode{n, at, time.Now()})
			delete(paused, n)
			continue
		}
		require.NoError(e.t, n.PauseReplay(ctx))
		paused[n] = time.Now()
	}
	return eps
}

// stormFigures are the router's reactions to the pauses.
type stormFigures struct {
	detect  []time.Duration // pause -> out of rotation, for pauses long enough
	recover []time.Duration // resume -> back in rotation, for those
	short   int             // pauses over before the router had to react
	longest time.Duration
}

func pauseFigures(stats *statsLog, eps []replayEpisode, ended time.Time) stormFigures {
	var f stormFigures
	for i, ep := range eps {
		port := ep.n.Port()
		f.longest = max(f.longest, ep.resumed.Sub(ep.paused))
		next := ended.Add(time.Hour) // the same replica's next pause
		for _, later := range eps[i+1:] {
			if later.n == ep.n && later.paused.Before(next) {
				next = later.paused
			}
		}
		out, ok := stats.first(ep.paused, nodeIneligible(port))
		if !ok || !out.Before(ep.resumed) {
			f.short++
			continue
		}
		f.detect = append(f.detect, out.Sub(ep.paused))
		if back, ok := stats.first(ep.resumed, nodeEligible(port)); ok && back.Before(next) {
			f.recover = append(f.recover, back.Sub(ep.resumed))
		}
	}
	return f
}
