package shard_test

import (
	"encoding/binary"
	"testing"

	"github.com/pgshard/pgshard/shard"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"-", "-80", "80-", "40-80", "AB-cd", "0-", "-00", "zz", "", "--", "ffffffffffffffff-", "00112233445566778899-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := shard.ParseRange(s)
		if err != nil {
			return
		}
		if !r.Valid() {
			t.Fatalf("ParseRange(%q) accepted an empty range %#x-%#x", s, r.Start, r.End)
		}
		back, err := shard.ParseRange(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRange(%q) = %s, which parses back to %v, %v", s, r, back, err)
		}
	})
}

// FuzzNewMap decodes the input as a list of (start, end) pairs, one shard
// each. Whatever NewMap accepts must be a true partition of the keyspace.
func FuzzNewMap(f *testing.F) {
	f.Add([]byte{}, uint64(0))
	f.Add(binary.BigEndian.AppendUint64(make([]byte, 8), 0), uint64(1))
	two := binary.BigEndian.AppendUint64(nil, 0)
	two = binary.BigEndian.AppendUint64(two, 1<<63)
	two = binary.BigEndian.AppendUint64(two, 1<<63)
	two = binary.BigEndian.AppendUint64(two, 0)
	f.Add(two, uint64(1<<63-1))
	f.Fuzz(func(t *testing.T, data []byte, probe uint64) {
		assign := map[string]shard.Range{}
		for i := 0; i+16 <= len(data) && i < 16*64; i += 16 {
			r := shard.Range{Start: shard.ID(binary.BigEndian.Uint64(data[i:])), End: shard.ID(binary.BigEndian.Uint64(data[i+8:]))}
			assign[r.String()+string(rune('a'+i/16%26))] = r
		}
		m, err := shard.NewMap(assign)
		if err != nil {
			return
		}
		id := shard.ID(probe)
		owners := 0
		for name, r := range assign {
			if r.Contains(id) {
				owners++
				if got := m.Lookup(id); got != name {
					t.Fatalf("Lookup(%#x) = %q, but %q owns it (%s)", probe, got, name, r)
				}
			}
		}
		if owners != 1 {
			t.Fatalf("NewMap accepted a map where %d shards own %#x", owners, probe)
		}
		prev := shard.ID(0)
		for i, name := range m.Shards() {
			r, _ := m.Range(name)
			if r.Start != prev || (i > 0 && r.Start == 0) {
				t.Fatalf("shard %q starts at %#x, want %#x", name, r.Start, prev)
			}
			prev = r.End
		}
		if prev != 0 {
			t.Fatalf("the last shard ends at %#x, not at the end of the keyspace", prev)
		}
	})
}
