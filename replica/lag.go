package replica

import "time"

// history remembers where the primary's WAL was at each recent check, on
// this process's own clock. A replica that has replayed position L holds
// everything the primary had written at the last check whose position was
// <= L, so its data is at most that old. This measures time lag without a
// heartbeat table, without the primary's commit timestamps and without
// clock skew between hosts, and an idle primary gives a caught-up replica
// lag 0.
type history struct {
	at  []time.Time
	pos []LSN
	n   int // samples held
	i   int // next slot
}

func newHistory(size int) *history {
	return &history{at: make([]time.Time, size), pos: make([]LSN, size)}
}

func (h *history) add(at time.Time, pos LSN) {
	h.at[h.i], h.pos[h.i] = at, pos
	h.i = (h.i + 1) % len(h.at)
	if h.n < len(h.at) {
		h.n++
	}
}

func (h *history) reset() { h.n, h.i = 0, 0 }

// lag returns how old the data of a replica at position replay is at now,
// and false when the history cannot tell (no sample yet).
func (h *history) lag(now time.Time, replay LSN) (time.Duration, bool) {
	if h.n == 0 {
		return 0, false
	}
	newest := (h.i - 1 + len(h.at)) % len(h.at)
	if replay >= h.pos[newest] {
		return 0, true
	}
	// Walk back to the newest sample the replica has replayed.
	for k := 1; k < h.n; k++ {
		j := (newest - k + len(h.at)) % len(h.at)
		if h.pos[j] <= replay {
			// The replica has the primary's state of sample j but not of
			// j+1, so it misses writes made since sample j at the latest.
			return max(now.Sub(h.at[j]), 0), true
		}
	}
	oldest := (newest - h.n + 1 + len(h.at)) % len(h.at)
	return max(now.Sub(h.at[oldest]), 0), true // at least this old
}
