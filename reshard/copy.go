package reshard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/topology"
)

// applySchema is the table each target keeps the stream's position in,
// written in the same transaction as the changes it covers.
const applySchema = `
CREATE SCHEMA IF NOT EXISTS pgshard;
CREATE TABLE IF NOT EXISTS pgshard.reshard_apply (
	workflow    text PRIMARY KEY,
	lsn         pg_lsn NOT NULL,
	commit_time timestamptz,
	updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION pgshard.reshard_expect(n bigint, what text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
	IF n <> 1 THEN
		RAISE EXCEPTION 'pgshard: % found % rows for its key, want 1: the target has diverged from the source', what, n
			USING ERRCODE = 'PGS02';
	END IF;
END $f$;`

// guardSQL refuses TRUNCATE of the moving tables on the source: the
// stream could not route it.
const guardSQL = `
CREATE SCHEMA IF NOT EXISTS pgshard;
CREATE OR REPLACE FUNCTION pgshard.reshard_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	RAISE EXCEPTION 'pgshard: TRUNCATE of %.% refused: resharding workflow % is moving it', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0]
		USING ERRCODE = '55000', HINT = 'delete the rows instead, or cancel the workflow first';
END $f$;`

const guardTrigger = "pgshard_reshard_no_truncate"

// copyPhase makes the publication and the slot and copies every declared
// table under the slot's snapshot; the workflow is then streaming. An
// earlier attempt's slot and rows are dropped first.
func (m *Manager) copyPhase(ctx context.Context, name string) error {
	st, err := m.update(ctx, name, func(st *State) error {
		if st.Phase != PhaseCreated && st.Phase != PhaseCopying {
			return fmt.Errorf("%w: copy in phase %s", ErrPhase, st.Phase)
		}
		st.Phase, st.Copied, st.ConsistentLSN, st.Error = PhaseCopying, nil, "", ""
		st.CopyAttempts++
		return nil
	})
	if err != nil {
		return err
	}
	m.o.Logger.Info("reshard: copy", "workflow", name, "attempt", st.CopyAttempts)
	began := time.Now()
	if err := m.dropSlot(ctx, st); err != nil {
		return err
	}
	if err := m.emptyTargets(ctx, st); err != nil {
		return err
	}
	err = m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, guardSQL); err != nil {
			return err
		}
		var list []string
		for _, t := range st.Tables {
			q := quoteTable(t.Name)
			list = append(list, q)
			if _, err := c.Exec(ctx, fmt.Sprintf("CREATE OR REPLACE TRIGGER %s BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION pgshard.reshard_no_truncate(%s)",
				guardTrigger, q, quoteLiteral(st.Name))); err != nil {
				return err
			}
		}
		pub := pgx.Identifier{st.Publication}.Sanitize()
		_, err := c.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pub+"; CREATE PUBLICATION "+pub+" FOR TABLE "+strings.Join(list, ", "))
		return err
	})
	if err != nil {
		return fmt.Errorf("reshard: source %s: publication: %w", st.Source.Shard, err)
	}
	repl, err := m.replicationConn(ctx, st)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	slot, err := pglogrepl.CreateReplicationSlot(ctx, repl, st.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return fmt.Errorf("reshard: source %s: create slot %s: %w", st.Source.Shard, st.Slot, err)
	}
	if st, err = m.update(ctx, name, func(s *State) error {
		if s.Phase != PhaseCopying {
			return fmt.Errorf("%w: the workflow is now %s", ErrPhase, s.Phase)
		}
		s.ConsistentLSN = slot.ConsistentPoint
		return nil
	}); err != nil {
		return err
	}
	copied, err := m.copyTables(ctx, st, slot.SnapshotName)
	if err != nil {
		return err
	}
	err = m.eachTarget(ctx, st, func(_ Target, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO pgshard.reshard_apply (workflow, lsn) VALUES ($1, $2)
			ON CONFLICT (workflow) DO UPDATE SET lsn = $2, commit_time = NULL, updated_at = clock_timestamp()`, st.Name, slot.ConsistentPoint)
		return err
	})
	if err != nil {
		return err
	}
	_, err = m.update(ctx, name, func(s *State) error {
		if s.Phase != PhaseCopying || s.ConsistentLSN != slot.ConsistentPoint {
			return fmt.Errorf("%w: the workflow changed during the copy (now %s)", ErrPhase, s.Phase)
		}
		s.Phase, s.Copied, s.CopyTime = PhaseStreaming, copied, time.Since(began)
		return nil
	})
	if err == nil {
		m.o.Logger.Info("reshard: copied", "workflow", name, "rows", copied, "took", time.Since(began))
	}
	return err
}

// copyTables copies every declared table, CopyWorkers at a time.
func (m *Manager) copyTables(ctx context.Context, st *State, snapshot string) (map[string]int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu     sync.Mutex
		copied = map[string]int64{}
		errs   []error
		wg     sync.WaitGroup
		sem    = make(chan struct{}, m.o.CopyWorkers)
	)
	for _, t := range st.Tables {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			n, err := m.copyTable(ctx, st, t, snapshot)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("reshard: copy %s: %w", t.Name, err))
				cancel()
				return
			}
			copied[t.Name] = n
		})
	}
	wg.Wait()
	if len(errs) == 0 && ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return copied, errors.Join(errs...)
}

// copyTable streams one table from the source, under the snapshot, into
// each target, in binary COPY, each row to the target that owns its key
// (a reference table's rows to all). It returns the rows written.
func (m *Manager) copyTable(ctx context.Context, st *State, t topology.Table, snapshot string) (int64, error) {
	src, err := m.source(ctx, st)
	if err != nil {
		return 0, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	if _, err := src.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return 0, err
	}
	if _, err := src.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshot)); err != nil {
		return 0, fmt.Errorf("import the slot's snapshot: %w", err)
	}
	keyCol := -1
	if !t.Reference {
		err := src.QueryRow(ctx, `SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0
			AND NOT attisdropped AND attgenerated = '' AND attnum < (SELECT attnum FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2)`,
			t.Name, t.Key).Scan(&keyCol)
		if err != nil {
			return 0, err
		}
	}
	rt, err := newRouter(st.Targets)
	if err != nil {
		return 0, err
	}
	all := make([]int, len(st.Targets))
	for i := range all {
		all[i] = i
	}
	var one [1]int
	sp := &splitter{keyCol: keyCol, rows: make([]int64, len(st.Targets)), route: func(key []byte) ([]int, error) {
		if t.Reference {
			return all, nil
		}
		id, err := hashBinary(t, key)
		if err != nil {
			return nil, err
		}
		i := rt.target(id)
		if i < 0 {
			return nil, nil // not in the moving range: stays behind
		}
		one[0] = i
		return one[:], nil
	}}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		pipes   = make([]*io.PipeWriter, len(st.Targets))
		bufs    = make([]*bufio.Writer, len(st.Targets))
		errs    = make([]error, len(st.Targets))
		sql     = "COPY " + quoteTable(t.Name) + " FROM STDIN (FORMAT binary)"
		targets = make([]*pgx.Conn, len(st.Targets))
	)
	defer func() {
		for _, c := range targets {
			if c != nil {
				c.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	for i, tg := range st.Targets {
		c, err := m.target(ctx, tg)
		if err != nil {
			return 0, err
		}
		targets[i] = c
	}
	for i, tg := range st.Targets {
		pr, pw := io.Pipe()
		pipes[i], bufs[i] = pw, bufio.NewWriterSize(pw, 256<<10)
		sp.outs = append(sp.outs, bufs[i])
		wg.Go(func() {
			_, err := targets[i].PgConn().CopyFrom(ctx, pr, sql)
			if err != nil {
				errs[i] = fmt.Errorf("target %s: %w", tg.Name, err)
				pr.CloseWithError(err)
				cancel()
			}
		})
	}
	_, err = src.PgConn().CopyTo(ctx, sp, "COPY "+quoteTable(t.Name)+" TO STDOUT (FORMAT binary)")
	if err == nil {
		err = sp.finish()
	}
	for i := range pipes {
		if err == nil {
			if ferr := bufs[i].Flush(); ferr != nil {
				err = ferr
			}
		}
	}
	for _, pw := range pipes {
		if err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	_, _ = src.Exec(ctx, "COMMIT")
	var n int64
	for _, r := range sp.rows {
		n += r
	}
	return n, nil
}

// emptyTargets removes what an earlier attempt copied to the targets.
func (m *Manager) emptyTargets(ctx context.Context, st *State) error {
	var list []string
	for _, t := range st.Tables {
		list = append(list, quoteTable(t.Name))
	}
	return m.eachTarget(ctx, st, func(_ Target, c *pgx.Conn) error {
		_, err := c.Exec(ctx, applySchema+"DELETE FROM pgshard.reshard_apply WHERE workflow = "+quoteLiteral(st.Name)+
			"; TRUNCATE "+strings.Join(list, ", "))
		return err
	})
}

// dropSlot drops the workflow's slot on the source if it exists, ending
// the session that streams from it.
func (m *Manager) dropSlot(ctx context.Context, st *State) error {
	err := m.withConn(ctx, "source "+st.Source.Shard, st.Source.Primary, func(c *pgx.Conn) error {
		return dropSlotOn(ctx, c, st.Slot)
	})
	if err != nil {
		return fmt.Errorf("reshard: source %s: %w", st.Source.Shard, err)
	}
	return nil
}

// dropSlotOn drops a slot on the node c is connected to, if it exists,
// ending the session that streams from it.
func dropSlotOn(ctx context.Context, c *pgx.Conn, slot string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), "is active") {
			return fmt.Errorf("drop slot %s: %w", slot, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
