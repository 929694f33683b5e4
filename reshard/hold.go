package reshard

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// holdPause is the Hold that pauses the stream at its next transaction
// boundary, wherever that is.
const holdPause = "pause"

// hold is the stream's view of the workflow's Hold.
type hold struct {
	pause bool          // pause at the next boundary
	at    pglogrepl.LSN // pause before the first transaction committed at or past it
}

func (h hold) none() bool { return !h.pause && h.at == 0 }

func holdOf(st *State) hold {
	if st.Hold == "" || time.Now().After(st.HoldExpires) {
		return hold{}
	}
	if st.Hold == holdPause {
		return hold{pause: true}
	}
	lsn, err := pglogrepl.ParseLSN(st.Hold)
	if err != nil {
		return hold{}
	}
	return hold{at: lsn}
}

// reached says whether the stream, at a boundary where everything
// committed before pos is applied and nothing after, must stop.
func (h hold) reached(pos pglogrepl.LSN) bool { return h.pause || h.at != 0 && pos >= h.at }

// holdHere pauses the stream at a transaction boundary: every target has
// every change committed before pos and none after. For a position hold,
// each target records it; then the stream tells the workflow it holds and
// waits (still reporting flushed to the source) until the hold changes.
// It returns the new hold.
func (m *Manager) holdHere(ctx context.Context, repl *pgconn.PgConn, a *applier, name string, h hold, flushed pglogrepl.LSN) (hold, error) {
	if h.at != 0 {
		for _, t := range a.targets {
			if t.applied >= h.at {
				continue
			}
			_, err := t.conn.Exec(ctx, `UPDATE pgshard.reshard_apply SET lsn = greatest(lsn, $2::pg_lsn), updated_at = clock_timestamp() WHERE workflow = $1`,
				a.posKey, h.at.String())
			if err != nil {
				return h, fmt.Errorf("target %s: %w", t.name, err)
			}
			t.applied = h.at
		}
	}
	want := "pause"
	if h.at != 0 {
		want = h.at.String()
	}
	if _, err := m.update(ctx, name, func(st *State) error {
		if st.Hold == want {
			st.HoldAck = true
		}
		return nil
	}); err != nil {
		return h, err
	}
	m.o.Logger.Info("reshard: stream held for verify", "workflow", name, "hold", want)
	for {
		select {
		case <-ctx.Done():
			return h, ctx.Err()
		case <-time.After(m.o.StatusInterval):
		}
		if err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: flushed, WALFlushPosition: flushed, WALApplyPosition: flushed,
		}); err != nil {
			return h, err
		}
		cur, _, err := m.load(ctx, name)
		if err != nil {
			return h, err
		}
		if now := holdOf(cur); now != h || !streaming(cur.Phase) {
			return now, nil
		}
	}
}
