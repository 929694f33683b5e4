package reshard

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Status is a workflow's state with what its servers say now.
type Status struct {
	State
	// SourceLSN is the source's current WAL position.
	SourceLSN string `json:"source_lsn,omitempty"`
	// Slot says whether the slot exists, whether a stream reads it, and
	// the position every target has confirmed.
	SlotExists   bool   `json:"slot_exists"`
	SlotActive   bool   `json:"slot_active"`
	ConfirmedLSN string `json:"confirmed_lsn,omitempty"`
	// LagBytes is how much WAL the source wrote past the confirmed
	// position; LagSeconds how old the newest applied source commit is
	// while there is lag (0 without lag).
	LagBytes   int64   `json:"lag_bytes"`
	LagSeconds float64 `json:"lag_seconds"`
	// RetainedBytes is the WAL the slot holds back on the source.
	RetainedBytes int64 `json:"retained_bytes"`
	// Applied is each target's recorded position.
	Applied map[string]string `json:"applied,omitempty"`
	// Warnings say what needs the operator's eye.
	Warnings []string `json:"warnings,omitempty"`
}

// RetainedWarning is the WAL a slot may hold back on the source before
// Status warns of it.
const RetainedWarning = 1 << 30

// Status returns the workflow's state and its servers' view of it.
func (m *Manager) Status(ctx context.Context, name string) (*Status, error) {
	st, _, err := m.load(ctx, name)
	if err != nil {
		return nil, err
	}
	s := &Status{State: *st, Applied: map[string]string{}}
	if st.Error != "" {
		s.Warnings = append(s.Warnings, "stopped: "+st.Error)
	}
	var newest time.Time
	err = m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		var confirmed *string
		var active *bool
		var lag, retained *int64
		err := c.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, s.confirmed_flush_lsn::text, s.active,
				pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::int8,
				pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::int8
			FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`, st.Slot).
			Scan(&s.SourceLSN, &confirmed, &active, &lag, &retained)
		if err != nil {
			return err
		}
		s.SlotExists = confirmed != nil || active != nil
		if confirmed != nil {
			s.ConfirmedLSN = *confirmed
		}
		if active != nil {
			s.SlotActive = *active
		}
		if lag != nil {
			s.LagBytes = max(*lag, 0)
		}
		if retained != nil {
			s.RetainedBytes = max(*retained, 0)
		}
		return nil
	})
	if err != nil {
		s.Warnings = append(s.Warnings, fmt.Sprintf("source %s: %v", st.Source.Shard, err))
	}
	_ = m.eachTarget(ctx, st, func(t Target, c *pgx.Conn) error {
		var lsn string
		var at *time.Time
		err := c.QueryRow(ctx, `SELECT lsn::text, commit_time FROM pgshard.reshard_apply WHERE workflow = $1`, st.Name).Scan(&lsn, &at)
		if err != nil {
			s.Warnings = append(s.Warnings, fmt.Sprintf("target %s: no recorded position (%v)", t.Name, err))
			return nil
		}
		s.Applied[t.Name] = lsn
		if at != nil && at.After(newest) {
			newest = *at
		}
		return nil
	})
	if s.LagBytes > 0 && !newest.IsZero() && streaming(st.Phase) {
		s.LagSeconds = max(time.Since(newest).Seconds(), 0)
	}
	inUse := st.Phase == PhaseCopying || streaming(st.Phase)
	switch {
	case inUse && !s.SlotExists && st.Phase != PhaseCopying:
		s.Warnings = append(s.Warnings, fmt.Sprintf("the slot %s is gone from the source: the workflow cannot go on (cancel it)", st.Slot))
	case s.SlotExists && !inUse:
		s.Warnings = append(s.Warnings, fmt.Sprintf("the slot %s still exists in phase %s: it holds WAL back; run cancel or complete again to drop it", st.Slot, st.Phase))
	}
	if s.RetainedBytes > RetainedWarning {
		s.Warnings = append(s.Warnings, fmt.Sprintf("the slot %s holds back %d MiB of WAL on the source (more than %d MiB)",
			st.Slot, s.RetainedBytes>>20, RetainedWarning>>20))
	}
	if s.SlotExists && !s.SlotActive && streaming(st.Phase) {
		s.Warnings = append(s.Warnings, "no process streams the slot: run 'pgshard reshard run "+st.Name+"'")
	}
	return s, nil
}
