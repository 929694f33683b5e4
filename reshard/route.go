package reshard

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgshard/pgshard/shard"
	"github.com/pgshard/pgshard/topology"
)

// router places keys on the workflow's targets.
type router struct {
	ranges []shard.Range
}

func newRouter(targets []Target) (*router, error) {
	r := &router{}
	for _, t := range targets {
		rg, err := shard.ParseRange(t.Range)
		if err != nil {
			return nil, err
		}
		r.ranges = append(r.ranges, rg)
	}
	return r, nil
}

// target returns the index of the target that owns id, or -1 when none
// does (a row outside the source's range).
func (r *router) target(id shard.ID) int {
	for i, rg := range r.ranges {
		if rg.Contains(id) {
			return i
		}
	}
	return -1
}

// hashBinary returns the keyspace ID of a key in COPY's binary form.
func hashBinary(t topology.Table, v []byte) (shard.ID, error) {
	switch t.KeyKind {
	case "int":
		switch len(v) {
		case 2:
			return shard.HashInt64(int64(int16(binary.BigEndian.Uint16(v)))), nil
		case 4:
			return shard.HashInt64(int64(int32(binary.BigEndian.Uint32(v)))), nil
		case 8:
			return shard.HashInt64(int64(binary.BigEndian.Uint64(v))), nil
		}
		return 0, fmt.Errorf("table %s: key %s: an integer of %d bytes", t.Name, t.Key, len(v))
	case "text", "bytes":
		return shard.HashBytes(v), nil
	}
	return 0, fmt.Errorf("table %s: key %s: unknown key kind %q", t.Name, t.Key, t.KeyKind)
}

// hashText returns the keyspace ID of a key in its text form, as pgoutput
// sends it.
func hashText(t topology.Table, v []byte) (shard.ID, error) {
	switch t.KeyKind {
	case "int":
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("table %s: key %s: %q is not an integer", t.Name, t.Key, v)
		}
		return shard.HashInt64(n), nil
	case "text":
		return shard.HashBytes(v), nil
	case "bytes":
		s, ok := strings.CutPrefix(string(v), `\x`)
		if !ok {
			return 0, fmt.Errorf("table %s: key %s: bytea not in hex form (set bytea_output = hex)", t.Name, t.Key)
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			return 0, fmt.Errorf("table %s: key %s: %v", t.Name, t.Key, err)
		}
		return shard.HashBytes(b), nil
	}
	return 0, fmt.Errorf("table %s: key %s: unknown key kind %q", t.Name, t.Key, t.KeyKind)
}
