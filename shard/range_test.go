package shard_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/pgshard/pgshard/shard"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in   string
		want shard.Range
		text string // canonical String(); "" means same as in
	}{
		{in: "-", want: shard.Range{}},
		{in: "-80", want: shard.Range{End: 0x8000000000000000}},
		{in: "80-", want: shard.Range{Start: 0x8000000000000000}},
		{in: "40-80", want: shard.Range{Start: 0x4000000000000000, End: 0x8000000000000000}},
		{in: "40-80", want: shard.Range{Start: 0x4000000000000000, End: 0x8000000000000000}},
		{in: "AB-CD", want: shard.Range{Start: 0xab00000000000000, End: 0xcd00000000000000}, text: "ab-cd"},
		{in: "4000-8000", want: shard.Range{Start: 0x4000000000000000, End: 0x8000000000000000}, text: "40-80"},
		{in: "00-80", want: shard.Range{End: 0x8000000000000000}, text: "-80"},
		{in: "0001-", want: shard.Range{Start: 0x0001000000000000}},
		{in: "-ffffffffffffffff", want: shard.Range{End: math.MaxUint64}},
		{in: "fffffffffffffffe-ffffffffffffffff", want: shard.Range{Start: math.MaxUint64 - 1, End: math.MaxUint64}},
		{in: "ffffffffffffffff-", want: shard.Range{Start: math.MaxUint64}},
		{in: "0123456789abcdef-", want: shard.Range{Start: 0x0123456789abcdef}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := shard.ParseRange(tc.in)
			if err != nil {
				t.Fatalf("ParseRange(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseRange(%q) = %#x-%#x, want %#x-%#x", tc.in, got.Start, got.End, tc.want.Start, tc.want.End)
			}
			text := tc.text
			if text == "" {
				text = tc.in
			}
			if s := got.String(); s != text {
				t.Errorf("String() = %q, want %q", s, text)
			}
		})
	}
}

func TestParseRangeErrors(t *testing.T) {
	tests := []struct {
		name, in, mention string
	}{
		{"empty", "", "want start-end"},
		{"no dash", "80", "want start-end"},
		{"odd digits", "8-", "even number"},
		{"odd end digits", "-800", "even number"},
		{"too many digits", "00112233445566778899-", "at most 16"},
		{"not hex", "zz-", "not a hex digit"},
		{"sign", "+8-", "not a hex digit"},
		{"space", " 80-", "not a hex digit"},
		{"two dashes", "40-80-c0", "want start-end"},
		{"start equals end", "80-80", "start must be below end"},
		{"inverted", "c0-80", "start must be below end"},
		{"explicit zero end", "-00", "start must be below end"},
		{"equal after alignment", "80-8000", "start must be below end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := shard.ParseRange(tc.in)
			if err == nil {
				t.Fatalf("ParseRange(%q) succeeded, want an error", tc.in)
			}
			if !errors.Is(err, shard.ErrInvalidRange) {
				t.Errorf("error %v does not wrap ErrInvalidRange", err)
			}
			if !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), `"`+tc.in+`"`) {
				t.Errorf("error %q should quote the input and say %q", err, tc.mention)
			}
		})
	}
}

func TestRangeContains(t *testing.T) {
	tests := []struct {
		name string
		r    string
		id   shard.ID
		want bool
	}{
		{"whole keyspace, 0", "-", 0, true},
		{"whole keyspace, max", "-", math.MaxUint64, true},
		{"lower half, 0", "-80", 0, true},
		{"lower half, just below bound", "-80", 0x7fffffffffffffff, true},
		{"lower half, at bound", "-80", 0x8000000000000000, false},
		{"upper half, at bound", "80-", 0x8000000000000000, true},
		{"upper half, max", "80-", math.MaxUint64, true},
		{"upper half, below", "80-", 0x7fffffffffffffff, false},
		{"middle, start", "40-80", 0x4000000000000000, true},
		{"middle, before start", "40-80", 0x3fffffffffffffff, false},
		{"middle, end", "40-80", 0x8000000000000000, false},
		{"last ID only", "ffffffffffffffff-", math.MaxUint64, true},
		{"last ID only, below", "ffffffffffffffff-", math.MaxUint64 - 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := shard.ParseRange(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Contains(tc.id); got != tc.want {
				t.Errorf("%s.Contains(%#x) = %v, want %v", tc.r, uint64(tc.id), got, tc.want)
			}
		})
	}
}

func TestRangeSplit(t *testing.T) {
	tests := []struct {
		name string
		r    string
		n    int
		want []string
	}{
		{"halves", "-", 2, []string{"-80", "80-"}},
		{"quarters", "-", 4, []string{"-40", "40-80", "80-c0", "c0-"}},
		{"upper half in two", "80-", 2, []string{"80-c0", "c0-"}},
		{"middle in two", "40-80", 2, []string{"40-60", "60-80"}},
		{"thirds", "-", 3, []string{"-5555555555555555", "5555555555555555-aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa-"}},
		{"smallest range", "fffffffffffffffe-", 2, []string{"fffffffffffffffe-ffffffffffffffff", "ffffffffffffffff-"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := shard.ParseRange(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			parts, err := r.Split(tc.n)
			if err != nil {
				t.Fatalf("Split(%d): %v", tc.n, err)
			}
			var got []string
			for _, p := range parts {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("%s.Split(%d) = %v, want %v", tc.r, tc.n, got, tc.want)
			}
		})
	}
}

func TestRangeSplitContiguous(t *testing.T) {
	for _, n := range []int{2, 3, 7, 16, 255, 4096} {
		parts, err := shard.Range{}.Split(n)
		if err != nil {
			t.Fatalf("Split(%d): %v", n, err)
		}
		if len(parts) != n || parts[0].Start != 0 || parts[n-1].End != 0 {
			t.Fatalf("Split(%d): %d parts from %#x to %#x", n, len(parts), parts[0].Start, parts[n-1].End)
		}
		names := make(map[string]shard.Range, n)
		for i, p := range parts {
			if i > 0 && parts[i-1].End != p.Start {
				t.Fatalf("Split(%d): part %d starts at %#x, previous ends at %#x", n, i, p.Start, parts[i-1].End)
			}
			names[p.String()] = p
		}
		if _, err := shard.NewMap(names); err != nil {
			t.Errorf("Split(%d) parts do not form a map: %v", n, err)
		}
	}
}

func TestRangeSplitErrors(t *testing.T) {
	tests := []struct {
		name string
		r    shard.Range
		n    int
	}{
		{"one part", shard.Range{}, 1},
		{"zero parts", shard.Range{}, 0},
		{"negative", shard.Range{}, -3},
		{"too many", shard.Range{}, 4097},
		{"too small a range", shard.Range{Start: 10, End: 12}, 3},
		{"inverted", shard.Range{Start: 12, End: 10}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if parts, err := tc.r.Split(tc.n); err == nil {
				t.Errorf("Split(%d) = %v, want an error", tc.n, parts)
			} else if !errors.Is(err, shard.ErrInvalidRange) {
				t.Errorf("error %v does not wrap ErrInvalidRange", err)
			}
		})
	}
}
