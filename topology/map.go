package topology

import (
	"fmt"
	"time"

	"github.com/pgshard/pgshard/shard"
)

// State says whether a shard takes writes.
type State string

const (
	// StateServing is a shard that takes reads and writes (the default).
	StateServing State = "serving"
	// StateFenced is a shard whose primary refuses every router's writes:
	// routers hold writes to it for up to their fence wait (see
	// router.Config.FenceWait), as during a switchover. Reads go on.
	StateFenced State = "fenced"
)

// Shard is one shard of a map: its key range, its nodes and its state. DSNs
// name passwords through environment variables, never literally.
type Shard struct {
	Name     string   `json:"name" yaml:"name"`
	Range    string   `json:"range" yaml:"range"`
	Primary  string   `json:"primary" yaml:"primary"`
	Replicas []string `json:"replicas,omitempty" yaml:"replicas,omitempty"`
	State    State    `json:"state" yaml:"state"`
}

// Map is one version of the shard map. A Map read from a Store is shared
// and must not be changed; Clone gives a copy to change.
type Map struct {
	Version int64   `json:"version"`
	Shards  []Shard `json:"shards"`
	// ChangedAt, ChangedBy (who asked, as the tool was told) and DBUser
	// (the control database role that stored it) and Reason say where the
	// version came from.
	ChangedAt time.Time `json:"changed_at"`
	ChangedBy string    `json:"changed_by"`
	DBUser    string    `json:"db_user"`
	Reason    string    `json:"reason"`
}

// Clone returns a deep copy of m.
func (m *Map) Clone() *Map {
	c := *m
	c.Shards = make([]Shard, len(m.Shards))
	for i, s := range m.Shards {
		s.Replicas = append([]string(nil), s.Replicas...)
		c.Shards[i] = s
	}
	return &c
}

// Shard returns the named shard, and whether it exists.
func (m *Map) Shard(name string) (Shard, bool) {
	for _, s := range m.Shards {
		if s.Name == name {
			return s, true
		}
	}
	return Shard{}, false
}

// Keyspace returns the map's assignment of ranges to shard names.
func (m *Map) Keyspace() (*shard.Map, error) {
	assign := make(map[string]shard.Range, len(m.Shards))
	for _, s := range m.Shards {
		r, err := shard.ParseRange(s.Range)
		if err != nil {
			return nil, err
		}
		assign[s.Name] = r
	}
	return shard.NewMap(assign)
}

// Validate checks the shards as the store requires: each has a name used
// once, a valid range and a primary; the ranges cover the keyspace with no
// gap and no overlap; no node is listed twice (in one shard or two); no DSN
// holds a literal password; every state is known. Empty states and names
// are filled in (serving; the range's text). The error names what is wrong.
func (m *Map) Validate() error {
	if len(m.Shards) == 0 {
		return fmt.Errorf("%w: no shards", ErrInvalidMap)
	}
	names := map[string]int{}
	nodes := map[string]string{}
	assign := map[string]shard.Range{}
	for i := range m.Shards {
		s := &m.Shards[i]
		where := fmt.Sprintf("shards[%d]", i)
		r, err := shard.ParseRange(s.Range)
		if err != nil {
			return fmt.Errorf("%w: %s.range: %w", ErrInvalidMap, where, err)
		}
		if s.Name == "" {
			s.Name = r.String()
		}
		if !validName(s.Name) {
			return fmt.Errorf("%w: %s.name: %q: want 1 to 63 letters, digits, '-', '_' or '.'", ErrInvalidMap, where, s.Name)
		}
		where += fmt.Sprintf(" (%s)", s.Name)
		if j, dup := names[s.Name]; dup {
			return fmt.Errorf("%w: %s: name %q is also the name of shards[%d]", ErrInvalidMap, where, s.Name, j)
		}
		names[s.Name] = i
		assign[s.Name] = r
		switch s.State {
		case "":
			s.State = StateServing
		case StateServing, StateFenced:
		default:
			return fmt.Errorf("%w: %s.state: %q, want serving or fenced", ErrInvalidMap, where, s.State)
		}
		if len(s.Replicas) == 0 {
			s.Replicas = nil
		}
		if s.Primary == "" {
			return fmt.Errorf("%w: %s.primary: missing", ErrInvalidMap, where)
		}
		check := func(key, dsn string) error {
			id, err := checkDSN(dsn)
			if err != nil {
				return fmt.Errorf("%w: %s.%s: %v", ErrInvalidMap, where, key, err)
			}
			if other, dup := nodes[id]; dup {
				return fmt.Errorf("%w: %s.%s: node %s is also %s", ErrInvalidMap, where, key, id, other)
			}
			nodes[id] = where + "." + key
			return nil
		}
		if err := check("primary", s.Primary); err != nil {
			return err
		}
		for j, dsn := range s.Replicas {
			if err := check(fmt.Sprintf("replicas[%d]", j), dsn); err != nil {
				return err
			}
		}
	}
	if _, err := shard.NewMap(assign); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMap, err)
	}
	return nil
}
