package shard

import (
	"fmt"
	"math/bits"
	"strings"
)

// Range is the half-open key range [Start, End). End == 0 stands for the end
// of the keyspace, so the zero Range is the whole keyspace. A Range is a
// plain value, safe to copy and to use concurrently.
type Range struct {
	Start, End ID
}

// maxSplit bounds Split: more parts than this is a configuration mistake,
// not a sharding plan.
const maxSplit = 4096

// ParseRange parses a range in the form "start-end": each bound is empty or
// 2 to 16 hex digits (an even number, either case), left-aligned on the
// 64-bit ID, so "80" is 0x8000000000000000. An empty start is 0 and an empty
// end the end of the keyspace: "-80", "80-", "40-80" and "-" are all valid.
func ParseRange(s string) (Range, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok || strings.Contains(hi, "-") {
		return Range{}, fmt.Errorf("%w %q: want start-end, such as -80, 80- or 40-80", ErrInvalidRange, s)
	}
	start, err := parseBound(lo)
	if err != nil {
		return Range{}, fmt.Errorf("%w %q: start: %v", ErrInvalidRange, s, err)
	}
	end, err := parseBound(hi)
	if err != nil {
		return Range{}, fmt.Errorf("%w %q: end: %v", ErrInvalidRange, s, err)
	}
	if hi != "" && end <= start {
		return Range{}, fmt.Errorf("%w %q: start must be below end", ErrInvalidRange, s)
	}
	return Range{Start: start, End: end}, nil
}

// parseBound decodes one left-aligned hex bound; "" is 0.
func parseBound(s string) (ID, error) {
	if s == "" {
		return 0, nil
	}
	if len(s) > 16 {
		return 0, fmt.Errorf("%d hex digits, at most 16", len(s))
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d, ok := hexDigit(s[i])
		if !ok {
			return 0, fmt.Errorf("%q is not a hex digit", s[i])
		}
		v = v<<4 | uint64(d)
	}
	if len(s)%2 != 0 {
		return 0, fmt.Errorf("%d hex digits, want an even number", len(s))
	}
	return ID(v << (4 * (16 - len(s)))), nil
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String returns the range in its shortest lower-case form, such as "-80";
// ParseRange(r.String()) == r for every valid r.
func (r Range) String() string {
	return formatBound(r.Start) + "-" + formatBound(r.End)
}

// formatBound prints a bound with its trailing zero bytes dropped; 0 is "".
func formatBound(id ID) string {
	if id == 0 {
		return ""
	}
	s := fmt.Sprintf("%016x", uint64(id))
	for strings.HasSuffix(s, "00") {
		s = s[:len(s)-2]
	}
	return s
}

// Contains reports whether id lies in [Start, End).
func (r Range) Contains(id ID) bool {
	return id >= r.Start && (r.End == 0 || id < r.End)
}

// Valid reports whether the range holds at least one ID.
func (r Range) Valid() bool {
	return r.End == 0 || r.Start < r.End
}

// size returns the number of IDs in r as a 65-bit number (hi is 0 or 1).
func (r Range) size() (hi, lo uint64) {
	lo = uint64(r.End) - uint64(r.Start)
	if r.End == 0 && r.Start == 0 {
		return 1, 0
	}
	return 0, lo
}

// Split cuts r into n contiguous ranges of near-equal size, in keyspace
// order, for n from 2 to 4096.
func (r Range) Split(n int) ([]Range, error) {
	if n < 2 || n > maxSplit {
		return nil, fmt.Errorf("%w %s: cannot split into %d parts, want 2 to %d", ErrInvalidRange, r, n, maxSplit)
	}
	if !r.Valid() {
		return nil, fmt.Errorf("%w %s: start must be below end", ErrInvalidRange, r)
	}
	hi, lo := r.size()
	if hi == 0 && lo < uint64(n) {
		return nil, fmt.Errorf("%w %s: holds %d IDs, too few for %d parts", ErrInvalidRange, r, lo, n)
	}
	parts := make([]Range, n)
	prev := r.Start
	for i := 1; i <= n; i++ {
		next := r.End
		if i < n {
			// offset = size * i / n, computed in 128 bits; it stays below 2^64.
			ph, pl := bits.Mul64(lo, uint64(i))
			ph += hi * uint64(i)
			off, _ := bits.Div64(ph, pl, uint64(n))
			next = r.Start + ID(off)
		}
		parts[i-1] = Range{Start: prev, End: next}
		prev = next
	}
	return parts, nil
}
