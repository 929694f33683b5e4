package shard_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pgshard/pgshard/shard"
)

func mustMap(t testing.TB, assign map[string]string) *shard.Map {
	t.Helper()
	ranges := make(map[string]shard.Range, len(assign))
	for name, text := range assign {
		r, err := shard.ParseRange(text)
		if err != nil {
			t.Fatal(err)
		}
		ranges[name] = r
	}
	m, err := shard.NewMap(ranges)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMapLookup(t *testing.T) {
	m := mustMap(t, map[string]string{"a": "-40", "b": "40-80", "c": "80-c0", "d": "c0-"})
	tests := []struct {
		name string
		id   shard.ID
		want string
	}{
		{"zero", 0, "a"},
		{"below first bound", 0x3fffffffffffffff, "a"},
		{"at first bound", 0x4000000000000000, "b"},
		{"at half", 0x8000000000000000, "c"},
		{"below last bound", 0xbfffffffffffffff, "c"},
		{"at last bound", 0xc000000000000000, "d"},
		{"max", math.MaxUint64, "d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Lookup(tc.id); got != tc.want {
				t.Errorf("Lookup(%#x) = %q, want %q", uint64(tc.id), got, tc.want)
			}
		})
	}
	if got, want := m.Shards(), []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("Shards() = %v, want %v", got, want)
	}
	if r, ok := m.Range("b"); !ok || r.String() != "40-80" {
		t.Errorf(`Range("b") = %v, %v; want 40-80, true`, r, ok)
	}
	if _, ok := m.Range("nope"); ok {
		t.Error(`Range("nope") found a shard`)
	}
}

func TestMapSingleShard(t *testing.T) {
	m := mustMap(t, map[string]string{"only": "-"})
	for _, id := range []shard.ID{0, 1, 1 << 63, math.MaxUint64} {
		if got := m.Lookup(id); got != "only" {
			t.Errorf("Lookup(%#x) = %q, want only", uint64(id), got)
		}
	}
}

func TestNewMapErrors(t *testing.T) {
	tests := []struct {
		name    string
		assign  map[string]shard.Range
		mention []string
	}{
		{"empty", map[string]shard.Range{}, []string{"no shards"}},
		{"nil", nil, []string{"no shards"}},
		{"empty name", map[string]shard.Range{"": {}}, []string{"empty name"}},
		{"inverted range", map[string]shard.Range{"a": {Start: 9, End: 3}}, []string{`"a"`, "empty or inverted"}},
		{"empty range", map[string]shard.Range{"a": {Start: 3, End: 3}}, []string{`"a"`, "empty or inverted"}},
		{"gap at start", map[string]shard.Range{"a": {Start: 1 << 62}}, []string{"gap -40", "start of the keyspace"}},
		{"gap at end", map[string]shard.Range{"a": {End: 1 << 63}}, []string{"gap 80-", "end of the keyspace"}},
		{"gap in middle", map[string]shard.Range{"a": {End: 1 << 62}, "b": {Start: 1 << 63}}, []string{"gap 40-80", `"a"`, `"b"`}},
		{"overlap", map[string]shard.Range{"a": {End: 1 << 63}, "b": {Start: 1 << 62}}, []string{`"a" (-80)`, `"b" (40-)`, "overlap on 40-80"}},
		{"same range twice", map[string]shard.Range{"a": {}, "b": {}}, []string{`"a" (-)`, `"b" (-)`, "overlap"}},
		{"nested", map[string]shard.Range{"a": {}, "b": {Start: 1 << 62, End: 1 << 63}}, []string{`"a"`, `"b"`, "overlap on 40-80"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := shard.NewMap(tc.assign)
			if err == nil {
				t.Fatalf("NewMap succeeded with shards %v, want an error", m.Shards())
			}
			if !errors.Is(err, shard.ErrInvalidMap) {
				t.Errorf("error %v does not wrap ErrInvalidMap", err)
			}
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestUniform(t *testing.T) {
	m, err := shard.Uniform("s0", "s1", "s2", "s3")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s0": "-40", "s1": "40-80", "s2": "80-c0", "s3": "c0-"}
	for name, text := range want {
		if r, _ := m.Range(name); r.String() != text {
			t.Errorf("Range(%q) = %s, want %s", name, r, text)
		}
	}
	if _, err := shard.Uniform(); err == nil {
		t.Error("Uniform() with no names succeeded")
	}
	if _, err := shard.Uniform("a", "a"); err == nil || !strings.Contains(err.Error(), `"a" appears twice`) {
		t.Errorf("Uniform(a, a) error = %v, want a duplicate-name error", err)
	}
	one, err := shard.Uniform("all")
	if err != nil || one.Lookup(math.MaxUint64) != "all" {
		t.Errorf("Uniform(all) = %v, %v", one, err)
	}
}

// Sequential user IDs must spread evenly: the hash, not the ID order, places rows.
func TestUniformDistribution(t *testing.T) {
	const users = 1_000_000
	m, err := shard.Uniform("s0", "s1", "s2", "s3")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for id := int64(1); id <= users; id++ {
		counts[m.Lookup(shard.HashInt64(id))]++
	}
	for _, name := range m.Shards() {
		share := float64(counts[name]) / users
		if share < 0.24 || share > 0.26 {
			t.Errorf("shard %s holds %.3f%% of the users, want 25%% ± 1%%", name, 100*share)
		}
	}
}

// Lookup narrows its search through a bucket table; uneven maps, with many
// shards inside one bucket, must still find the owner a linear scan finds.
func TestMapLookupUnevenRanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		bounds func() []shard.ID
	}{
		{"random bounds", func() []shard.ID {
			var b []shard.ID
			for range 99 {
				b = append(b, shard.ID(rng.Uint64()))
			}
			return b
		}},
		{"crowded first bucket", func() []shard.ID {
			var b []shard.ID
			for i := range 50 {
				b = append(b, shard.ID(i+1))
			}
			return append(b, 1<<63)
		}},
		{"crowded last bucket", func() []shard.ID {
			var b []shard.ID
			for i := range 50 {
				b = append(b, shard.ID(math.MaxUint64-uint64(i)))
			}
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bounds := tc.bounds()
			slices.Sort(bounds)
			bounds = slices.Compact(bounds)
			assign := map[string]shard.Range{}
			prev := shard.ID(0)
			for i, b := range append(bounds, 0) {
				assign[fmt.Sprint(i)] = shard.Range{Start: prev, End: b}
				prev = b
			}
			m, err := shard.NewMap(assign)
			if err != nil {
				t.Fatal(err)
			}
			probes := append([]shard.ID{0, math.MaxUint64}, bounds...)
			for _, b := range bounds {
				probes = append(probes, b-1)
			}
			for range 10000 {
				probes = append(probes, shard.ID(rng.Uint64()))
			}
			for _, id := range probes {
				want := ""
				for name, r := range assign {
					if r.Contains(id) {
						want = name
					}
				}
				if got := m.Lookup(id); got != want {
					t.Fatalf("Lookup(%#x) = %q, want %q", uint64(id), got, want)
				}
			}
		})
	}
}
