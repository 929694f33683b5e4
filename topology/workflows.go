package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrNoWorkflow is returned for a workflow name the store does not hold.
var ErrNoWorkflow = errors.New("topology: no such workflow")

const workflowsSchema = `
CREATE SCHEMA IF NOT EXISTS pgshard;
CREATE TABLE IF NOT EXISTS pgshard.workflows (
	name       text PRIMARY KEY,
	kind       text NOT NULL,
	state      jsonb NOT NULL,
	revision   bigint NOT NULL DEFAULT 1,
	created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);`

// PutWorkflow stores a workflow's state (any JSON value) under its name,
// so that a process that resumes it finds where it was. A new name is
// created with revision 1; an existing one is replaced only when rev is
// the revision it holds, else ErrConflict. It returns the new revision.
// rev 0 creates, and fails with ErrConflict if the name exists.
func (s *Store) PutWorkflow(ctx context.Context, name, kind string, rev int64, state any) (int64, error) {
	b, err := json.Marshal(state)
	if err != nil {
		return 0, fmt.Errorf("topology: workflow %s: %w", name, err)
	}
	if _, err := s.pool.Exec(ctx, workflowsSchema); err != nil {
		return 0, storeError(err, -1)
	}
	var next int64
	if rev == 0 {
		err = s.pool.QueryRow(ctx, `INSERT INTO pgshard.workflows (name, kind, state) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO NOTHING RETURNING revision`, name, kind, b).Scan(&next)
	} else {
		err = s.pool.QueryRow(ctx, `UPDATE pgshard.workflows SET state = $3, revision = revision + 1, updated_at = clock_timestamp()
			WHERE name = $1 AND revision = $2 RETURNING revision`, name, rev, b).Scan(&next)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: workflow %s was changed by another process (or exists already)", ErrConflict, name)
	}
	if err != nil {
		return 0, storeError(err, -1)
	}
	return next, nil
}

// Workflow reads a workflow's state into state and returns its revision;
// ErrNoWorkflow when there is none of that name.
func (s *Store) Workflow(ctx context.Context, name string, state any) (int64, error) {
	var (
		b   []byte
		rev int64
	)
	err := s.pool.QueryRow(ctx, `SELECT state, revision FROM pgshard.workflows WHERE name = $1`, name).Scan(&b, &rev)
	if errors.Is(err, pgx.ErrNoRows) || errors.Is(storeError(err, -1), ErrNotInitialized) {
		return 0, fmt.Errorf("%w: %q", ErrNoWorkflow, name)
	}
	if err != nil {
		return 0, storeError(err, -1)
	}
	if err := json.Unmarshal(b, state); err != nil {
		return 0, fmt.Errorf("topology: workflow %s: %w", name, err)
	}
	return rev, nil
}

// Workflows lists the names of the stored workflows of a kind ("" for
// all), oldest first.
func (s *Store) Workflows(ctx context.Context, kind string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM pgshard.workflows WHERE kind = $1 OR $1 = '' ORDER BY created_at, name`, kind)
	if err != nil {
		if errors.Is(storeError(err, -1), ErrNotInitialized) {
			return nil, nil
		}
		return nil, storeError(err, -1)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
