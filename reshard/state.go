package reshard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgshard/pgshard/topology"
)

// Phase is where a workflow is.
type Phase string

// The phases, in order; see the package documentation.
const (
	PhaseCreated   Phase = "created"
	PhaseCopying   Phase = "copying"
	PhaseStreaming Phase = "streaming"
	PhaseSwitching Phase = "switching"
	PhaseSwitched  Phase = "switched"
	PhaseReversed  Phase = "reversed"
	PhaseCompleted Phase = "completed"
	PhaseCancelled Phase = "cancelled"
)

// workflowKind is the kind under which workflows are kept in the store.
const workflowKind = "reshard"

// Target is a shard that takes part of the source's range.
type Target struct {
	// Name is the shard's name in the map that the switch publishes.
	// Default: its range, such as "80-c0".
	Name string `json:"name"`
	// Range is the part of the source's range it takes.
	Range string `json:"range"`
	// Primary is the DSN of its primary, as the map stores it (a password
	// named as ${VAR}, expanded by each process that connects).
	Primary string `json:"primary"`
	// Replicas are its replicas' DSNs, for the map.
	Replicas []string `json:"replicas,omitempty"`
}

// Source is the shard whose range moves.
type Source struct {
	Shard    string   `json:"shard"`
	Range    string   `json:"range"`
	Primary  string   `json:"primary"`
	Replicas []string `json:"replicas,omitempty"`
}

// State is a workflow as the control store keeps it. It is a plain value:
// each step reads it, changes it and stores it back.
type State struct {
	Name    string           `json:"name"`
	Phase   Phase            `json:"phase"`
	Source  Source           `json:"source"`
	Targets []Target         `json:"targets"`
	Tables  []topology.Table `json:"tables"`
	// MapVersion is the map version the workflow was created from.
	MapVersion int64 `json:"map_version"`
	// Slot and Publication are the names made on the source.
	Slot        string `json:"slot"`
	Publication string `json:"publication"`
	// ConsistentLSN is the slot's consistent point: the copy saw every
	// transaction committed before it, the stream starts there.
	ConsistentLSN string `json:"consistent_lsn,omitempty"`
	// Copied counts the rows copied per table, summed over the targets.
	Copied map[string]int64 `json:"copied,omitempty"`
	// CopyAttempts counts the copies begun (an interrupted one restarts).
	CopyAttempts int `json:"copy_attempts,omitempty"`
	// CopyTime is how long the last complete copy took.
	CopyTime time.Duration `json:"copy_time,omitempty"`
	// FenceLSN is the source's position once fenced (switching).
	FenceLSN string `json:"fence_lsn,omitempty"`
	// PreviousFence is the source's fence before the switch, put back if
	// the switch is abandoned before the point of no return.
	PreviousFence *topology.FenceState `json:"previous_fence,omitempty"`
	// PointOfNoReturn is set once the targets have every write the
	// source took before its fence: from there the switch only goes
	// forward (SwitchWrites again finishes it).
	PointOfNoReturn bool `json:"point_of_no_return,omitempty"`
	// SwitchedVersion is the map version that gives the range to the
	// targets (set at the point of no return, stored by the switch).
	SwitchedVersion int64 `json:"switched_version,omitempty"`
	// Hold, while a Verify runs, pauses the stream: "pause" at the next
	// transaction boundary, then a source position at which it stops
	// again, having applied everything committed before it. HoldAck says
	// the stream has paused. A hold ends at HoldExpires at the latest.
	Hold        string    `json:"hold,omitempty"`
	HoldAck     bool      `json:"hold_ack,omitempty"`
	HoldExpires time.Time `json:"hold_expires,omitzero"`
	// Reverse says the switch set up reverse replication (a publication
	// and a slot on each target feeding the source), which Reverse needs;
	// ReverseError says why not, when it did not.
	Reverse      bool   `json:"reverse,omitempty"`
	ReverseError string `json:"reverse_error,omitempty"`
	// ReversedVersion is the map version that gave the range back to the
	// source.
	ReversedVersion int64 `json:"reversed_version,omitempty"`
	// Error is why the workflow last stopped, if it did.
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// done says whether Run has nothing more to do.
func (s *State) done() bool {
	return s.Phase == PhaseCompleted || s.Phase == PhaseCancelled || s.Phase == PhaseReversed
}

// load reads the named workflow.
func (m *Manager) load(ctx context.Context, name string) (*State, int64, error) {
	st := &State{}
	rev, err := m.store.Workflow(ctx, name, st)
	if err != nil {
		return nil, 0, fmt.Errorf("reshard: %w", err)
	}
	return st, rev, nil
}

// update reads the workflow, lets fn change it and stores it, again from
// the top if another process stored it meanwhile. fn may run more than
// once; an error from fn stores nothing.
func (m *Manager) update(ctx context.Context, name string, fn func(*State) error) (*State, error) {
	for {
		st, rev, err := m.load(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := fn(st); err != nil {
			return st, err
		}
		st.UpdatedAt = time.Now().UTC()
		_, err = m.store.PutWorkflow(ctx, name, workflowKind, rev, st)
		if errors.Is(err, topology.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return st, nil
	}
}

// Get returns the named workflow's state.
func (m *Manager) Get(ctx context.Context, name string) (*State, error) {
	st, _, err := m.load(ctx, name)
	return st, err
}

// List returns the names of the stored workflows, oldest first.
func (m *Manager) List(ctx context.Context) ([]string, error) {
	return m.store.Workflows(ctx, workflowKind)
}
