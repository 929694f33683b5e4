package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jackc/pgx/v5"
)

// 5. Cache listener loss: two instances; instance B's LISTEN backends are
// terminated again and again while instance A renames users that B reads
// (and caches). After each reconnect no read may be stale; the window of
// possible staleness (from the termination until B stops trusting its
// cache) is reported.
func chaosListenerLoss(t *testing.T, e *chaosEnv) *chaosResult {
	res := &chaosResult{Title: "Cache listener loss"}
	a := e.server("a", 105, nil, nil)
	b := e.server("b", 106, nil, nil)

	work := e.startRenames(t, a, b, 16, 4)
	lr := e.load(0, a, b)
	every := e.len.listenerRun / time.Duration(e.len.terminations+1)
	cuts := e.cutListeners(t, b, e.len.terminations, every)
	e.await(20*time.Second, func() bool { // the last round's listeners back up
		for _, c := range cuts[len(cuts)-len(e.c.Shards()):] {
			if _, ok := c.window(b.stats); !ok {
				return false
			}
		}
		return true
	})
	time.Sleep(every)
	rep := lr.end(t)
	reads := work.stop()
	e.clients(res, rep)

	var windows []listenerWindow
	var blind, reconnect []time.Duration
	inOrder := map[string][]string{} // each shard's reconnect times, cut by cut
	missed := 0
	for _, c := range cuts {
		if c.ended != 1 {
			missed++
		}
		w, ok := c.window(b.stats)
		if !ok {
			t.Errorf("shard %s: B's listener not seen down and up again after the termination at %.3fs", c.shard, c.at.Sub(e.began).Seconds())
			continue
		}
		windows = append(windows, w)
		blind = append(blind, w.down.Sub(w.cut))
		reconnect = append(reconnect, w.up.Sub(w.cut))
		inOrder[c.shard] = append(inOrder[c.shard], fmtDur(w.up.Sub(w.cut)))
	}
	var staleAfter, staleIn, fromCache int
	for _, r := range reads {
		if r.servedBy == "cache" {
			fromCache++
		}
		switch {
		case !r.stale():
		case slices.ContainsFunc(windows, func(w listenerWindow) bool { return w.holds(r) }):
			staleIn++
		default:
			staleAfter++
			if staleAfter <= 5 {
				res.note("stale read at %.3fs on %s, served by %s: version %d, want %d or newer",
					r.start.Sub(e.began).Seconds(), r.shard, r.servedBy, r.seen, r.want)
			}
		}
	}
	res.Violations += staleAfter
	res.Injected = fmt.Sprintf("instance B's LISTEN backends terminated (pg_terminate_backend) on both primaries %d times, every %s, while instance A renamed 16 users that B read and cached; loadgen on A and B",
		e.len.terminations, fmtDur(every))
	res.Saw = fmt.Sprintf("%d reads of the renamed users on B (%d from its cache): %d stale after a reconnect, %d stale inside a window of possible staleness",
		len(reads), fromCache, staleAfter, staleIn)
	res.Detect = fmt.Sprintf("window of possible staleness (termination -> B stops trusting its cache): median %s, max %s",
		fmtDur(median(blind)), fmtDur(slices.Max(append(blind, 0))))
	res.Recover = fmt.Sprintf("termination -> listener up again, cache purged: median %s, max %s",
		fmtDur(median(reconnect)), fmtDur(slices.Max(append(reconnect, 0))))
	e.expect(res, staleAfter == 0, "0 stale reads after the reconnect", fmt.Sprintf("%d of %d", staleAfter, len(reads)))
	e.expect(res, missed == 0 && len(windows) == len(cuts), "every termination cut one listener, seen down and up again",
		fmt.Sprintf("%d of %d terminations ended no session or more than one; %d windows measured", missed, len(cuts), len(windows)))
	res.note("Stale read: one on B that shows a name older than one A had acknowledged %s before the read was sent (from B's cache), or %s before (from a replica or the primary: a replica may lag by up to MaxLag). Inside a window: sent between a termination and the listener being up again.",
		fmtDur(notifySlack), fmtDur(notifySlack+chaosMaxLag))
	res.note("Time to detect: from the termination to B's first router sample with the shard's listener down, from which point B's reads of that shard bypass its cache. Notifications sent in that window are lost; this is the window of possible staleness (to within the 5 ms sampling).")
	res.note("Time to recover: from the termination to the first sample with the listener up again, after it has purged B's cache.")
	if n := len(reconnect); n >= 4 && median(reconnect[n/2:]) > 4*median(reconnect[:2]) {
		res.note("The time to reconnect grows with each termination (the first %s, the last %s): the listener's reconnect backoff keeps doubling across connections that had been listening for seconds (it is reset only when the primary moves), so a listener that is cut often stays down, and the cache bypassed, for up to 2 s each time.",
			fmtDur(reconnect[0]), fmtDur(reconnect[n-1]))
	}
	for _, name := range slices.Sorted(maps.Keys(inOrder)) {
		res.note("%s: termination -> listener up again, termination by termination: %s.", name, strings.Join(inOrder[name], ", "))
	}
	res.note("B's LISTEN session is the backend its router reports (Stats: ListenerPID) just before the termination.")
	return res
}

// listenerCut is one termination of B's LISTEN session on a shard.
type listenerCut struct {
	shard string
	at    time.Time // just before the termination was sent
	ended int       // sessions it ended
}

// cutListeners terminates B's LISTEN sessions on every shard's primary,
// rounds times, every apart, each from a superuser session opened
// beforehand so that the instant is exact. Each session is the backend B's
// router reports for the shard's listener.
func (e *chaosEnv) cutListeners(t *testing.T, b *chaosInstance, rounds int, every time.Duration) []listenerCut {
	ctx := context.Background()
	conns := map[string]*pgx.Conn{}
	for _, sh := range e.c.Shards() {
		c, err := pgx.Connect(ctx, sh.Primary.SuperDSN())
		require.NoError(t, err)
		defer c.Close(ctx)
		conns[sh.Name] = c
	}
	var cuts []listenerCut
	for range rounds {
		time.Sleep(every)
		// A listener still reconnecting from the last round has no session
		// to end: wait for it, as a busy machine may take longer than every.
		e.await(20*time.Second, func() bool {
			for _, sh := range b.r.Stats().Shards {
				if !sh.Listening {
					return false
				}
			}
			return true
		})
		for _, sh := range b.r.Stats().Shards {
			cut := listenerCut{shard: sh.Name, at: time.Now()}
			require.NoError(t, conns[sh.Name].QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid = $1", int64(sh.ListenerPID)).Scan(&cut.ended))
			cuts = append(cuts, cut)
		}
		e.mark("terminated instance B's LISTEN backends on both primaries")
	}
	return cuts
}

// listenerWindow is what a cut did to B: from the cut until its listener
// was seen down (reads of the shard then bypass the cache) and up again
// (the cache purged).
type listenerWindow struct {
	shard         string
	cut, down, up time.Time
}

func (c listenerCut) window(stats *statsLog) (listenerWindow, bool) {
	down, ok := stats.first(c.at, listening(c.shard, false))
	if !ok {
		return listenerWindow{}, false
	}
	up, ok := stats.first(down, listening(c.shard, true))
	return listenerWindow{c.shard, c.at, down, up}, ok
}

// holds says whether a read was sent inside the window.
func (w listenerWindow) holds(r versionRead) bool {
	return r.shard == w.shard && !r.start.Before(w.cut) && !r.start.After(w.up)
}

// listening says a shard's cache listener is up (or down) in a sample.
func listening(shardName string, up bool) func(*statsSample) bool {
	return func(s *statsSample) bool { return s.shard(shardName).listening == up }
}
