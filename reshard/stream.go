package reshard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// streaming says whether the forward stream runs in phase p: until the
// switch is done (after it, the reverse streams run).
func streaming(p Phase) bool {
	return p == PhaseStreaming || p == PhaseSwitching
}

// link is one logical replication stream and where its changes go.
type link struct {
	from      string // "source shard0": the node the slot is on, for errors
	dsn       string // its DSN as stored
	slot, pub string
	to        []Target // the nodes the changes are applied on
	rt        *router  // which of them owns a key
	posKey    string   // the row of pgshard.reshard_apply on each of them
	lost      string   // what to do when the slot is gone
	live      func(*State) bool
	holds     bool // a Verify may pause it
}

// forwardLink is the stream of the source's changes to the targets.
func forwardLink(st *State) (*link, error) {
	rt, err := newRouter(st.Targets)
	if err != nil {
		return nil, err
	}
	return &link{from: "source " + st.Source.Shard, dsn: st.Source.Primary, slot: st.Slot, pub: st.Publication,
		to: st.Targets, rt: rt, posKey: st.Name, holds: true,
		lost: "changes since may be missing from the targets, so the workflow stops; cancel it and create it again",
		live: func(s *State) bool { return streaming(s.Phase) }}, nil
}

// stream applies a slot's changes on the link's destinations until ctx
// ends, the workflow's state stops the link, or an error.
func (m *Manager) stream(ctx context.Context, name string, l *link) error {
	st, _, err := m.load(ctx, name)
	if err != nil {
		return err
	}
	if !l.live(st) {
		return nil
	}
	var exists bool
	err = m.withConn(ctx, l.from, l.dsn, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, l.slot).Scan(&exists)
	})
	if err != nil {
		return fmt.Errorf("reshard: %s: %w", l.from, err)
	}
	if !exists {
		return stopf(ErrSlotLost, "%s has no slot %s (a failover of its primary before PostgreSQL 17 loses it): %s", l.from, l.slot, l.lost)
	}
	a := &applier{posKey: l.posKey, mark: st.Name, rt: l.rt, rels: map[uint32]*relation{}}
	defer func() {
		for _, t := range a.targets {
			t.conn.Close(context.WithoutCancel(ctx))
		}
	}()
	start := pglogrepl.LSN(0)
	for i, t := range l.to {
		c, err := m.target(ctx, t)
		if err != nil {
			return err
		}
		tc := &targetConn{name: t.Name, conn: c}
		a.targets = append(a.targets, tc)
		var lsn string
		if err := c.QueryRow(ctx, `SELECT lsn::text FROM pgshard.reshard_apply WHERE workflow = $1`, l.posKey).Scan(&lsn); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return stopf(ErrPhase, "%s has no position for the stream %s: it was emptied; cancel the workflow", t.Name, l.posKey)
			}
			return fmt.Errorf("reshard: %s: %w", t.Name, err)
		}
		if tc.applied, err = pglogrepl.ParseLSN(lsn); err != nil {
			return err
		}
		if i == 0 || tc.applied < start {
			start = tc.applied
		}
		if i == 0 {
			if a.tables, err = loadTables(ctx, c, st.Tables); err != nil {
				return fmt.Errorf("reshard: %s: %w", t.Name, err)
			}
		}
	}

	repl, err := m.replicationConnTo(ctx, l.from, l.dsn)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	err = pglogrepl.StartReplication(ctx, repl, l.slot, start, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names " + quoteLiteral(l.pub), "messages 'true'"},
	})
	if err != nil {
		return fmt.Errorf("reshard: %s: start replication: %w", l.from, err)
	}
	m.o.Logger.Info("reshard: streaming", "workflow", name, "from", l.from, "at", start)

	// flushed is what every target has committed, or what the source
	// said it had sent while no transaction was open: the position
	// reported, never zero.
	flushed := start
	nextStatus := time.Now()
	var h hold // a Verify's
	for {
		if a.pending && a.atBoundary() && (a.groupDue() || !time.Now().Before(nextStatus)) {
			end, err := a.flush(ctx)
			if err != nil {
				return err
			}
			flushed = max(flushed, end)
		}
		if !time.Now().Before(nextStatus) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{
				WALWritePosition: flushed, WALFlushPosition: flushed, WALApplyPosition: flushed, ReplyRequested: true,
			}); err != nil {
				return fmt.Errorf("reshard: %s: status update: %w", l.from, err)
			}
			cur, _, err := m.load(ctx, name)
			if err != nil {
				return err
			}
			if !l.live(cur) {
				return nil
			}
			if l.holds {
				h = holdOf(cur)
			}
			nextStatus = time.Now().Add(m.o.StatusInterval)
		}
		wake := nextStatus
		if a.pending && a.atBoundary() {
			if g := a.groupStart.Add(groupWait); g.Before(wake) {
				wake = g
			}
		}
		rctx, cancel := context.WithDeadline(ctx, wake)
		raw, err := repl.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("reshard: %s: receive: %w", l.from, err)
		}
		switch msg := raw.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("reshard: %s: %w", l.from, pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyData:
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return err
				}
				if !a.inTx {
					end, err := a.flush(ctx)
					if err != nil {
						return err
					}
					flushed = max(flushed, end, ka.ServerWALEnd)
				}
				for !h.none() && !a.inTx && h.reached(ka.ServerWALEnd) {
					if h, err = m.holdHere(ctx, repl, a, name, h, flushed); err != nil {
						return err
					}
					nextStatus = time.Time{}
				}
				if ka.ReplyRequested {
					nextStatus = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return err
				}
				end, err := m.handle(ctx, a, xld.WALData)
				if err != nil {
					return err
				}
				// A transaction has just begun (nothing of it applied):
				// a boundary where a hold may pause it.
				for !h.none() && a.inTx && !a.touched && h.reached(a.finalLSN) {
					end, err := a.flush(ctx)
					if err != nil {
						return err
					}
					flushed = max(flushed, end)
					if h, err = m.holdHere(ctx, repl, a, name, h, flushed); err != nil {
						return err
					}
					nextStatus = time.Time{}
				}
				if end > flushed {
					flushed = end
				}
			}
		}
	}
}

// handle applies one pgoutput message; after a commit it returns the
// transaction's end, which every target now has.
func (m *Manager) handle(ctx context.Context, a *applier, data []byte) (pglogrepl.LSN, error) {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return 0, fmt.Errorf("reshard: decode: %w", err)
	}
	switch msg := msg.(type) {
	case *pglogrepl.RelationMessage:
		return 0, a.relation(msg)
	case *pglogrepl.BeginMessage:
		a.begin(msg)
	case *pglogrepl.InsertMessage:
		return 0, a.insert(ctx, msg)
	case *pglogrepl.UpdateMessage:
		return 0, a.update(ctx, msg)
	case *pglogrepl.DeleteMessage:
		return 0, a.delete(ctx, msg)
	case *pglogrepl.TruncateMessage:
		return 0, stopf(ErrTruncate, "the source truncated a moving table (relation %v) while its guard trigger was missing; "+
			"the targets no longer match: cancel the workflow", msg.RelationIDs)
	case *pglogrepl.LogicalDecodingMessage:
		a.message(msg)
	case *pglogrepl.CommitMessage:
		return a.commit(ctx, msg)
	}
	return 0, nil
}
