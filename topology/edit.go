package topology

import "fmt"

// The edits below change a map in place, as the CLI's add-replica,
// remove-replica and set-primary do before Apply. A node may be named by
// its DSN as stored, or by its identity host:port/database.

// AddReplica lists dsn as a replica of the named shard.
func (m *Map) AddReplica(shardName, dsn string) error {
	sh, err := m.shardRef(shardName)
	if err != nil {
		return err
	}
	sh.Replicas = append(sh.Replicas, dsn)
	return nil
}

// RemoveReplica drops the named node from the shard's replicas.
func (m *Map) RemoveReplica(shardName, node string) error {
	sh, err := m.shardRef(shardName)
	if err != nil {
		return err
	}
	i := findNode(sh.Replicas, node)
	if i < 0 {
		return fmt.Errorf("%w: shard %s has no replica %s", ErrInvalidMap, shardName, nodeName(node))
	}
	sh.Replicas = append(sh.Replicas[:i:i], sh.Replicas[i+1:]...)
	return nil
}

// SetPrimary makes the named replica the shard's primary; the old primary
// becomes a replica (remove it with RemoveReplica if it is gone). It
// records a switchover that has happened or is about to: promoting the
// server is the operator's (or the replica set detects it).
func (m *Map) SetPrimary(shardName, node string) error {
	sh, err := m.shardRef(shardName)
	if err != nil {
		return err
	}
	i := findNode(sh.Replicas, node)
	if i < 0 {
		return fmt.Errorf("%w: shard %s has no replica %s (add it first)", ErrInvalidMap, shardName, nodeName(node))
	}
	sh.Primary, sh.Replicas[i] = sh.Replicas[i], sh.Primary
	return nil
}

// SetState sets the shard's state.
func (m *Map) SetState(shardName string, st State) error {
	sh, err := m.shardRef(shardName)
	if err != nil {
		return err
	}
	sh.State = st
	return nil
}

func (m *Map) shardRef(name string) (*Shard, error) {
	for i := range m.Shards {
		if m.Shards[i].Name == name {
			return &m.Shards[i], nil
		}
	}
	return nil, fmt.Errorf("%w: no shard %q", ErrInvalidMap, name)
}

func findNode(dsns []string, node string) int {
	for i, d := range dsns {
		if d == node {
			return i
		}
	}
	want, err := checkDSN(node)
	if err != nil {
		want = node
	}
	for i, d := range dsns {
		if id, err := checkDSN(d); err == nil && id == want {
			return i
		}
	}
	return -1
}

// nodeName shows a node without risking a password: its identity, or the
// text given when that is already one.
func nodeName(node string) string {
	if id, err := checkDSN(node); err == nil {
		return id
	}
	if literalPassword(node) != nil {
		return "(a DSN with a literal password)"
	}
	return node
}
