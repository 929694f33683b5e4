package replica

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in PostgreSQL's write-ahead log. Positions only grow, so
// a replica whose replay LSN has reached a write's LSN has replayed that
// write.
type LSN uint64

// ParseLSN parses PostgreSQL's text form of an LSN, two hex numbers of up to
// eight digits each separated by a slash, such as "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("%w %q: want two hex numbers separated by /, such as 16/B374D848", ErrInvalidLSN, s)
	}
	h, err := parseHalf(hi)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrInvalidLSN, s, err)
	}
	l, err := parseHalf(lo)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrInvalidLSN, s, err)
	}
	return LSN(h<<32 | l), nil
}

func parseHalf(s string) (uint64, error) {
	if s == "" || len(s) > 8 {
		return 0, fmt.Errorf("%q must be 1 to 8 hex digits", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return 0, fmt.Errorf("%q is not a hex digit", c)
		}
	}
	return strconv.ParseUint(s, 16, 32)
}

// String returns the LSN the way PostgreSQL prints it: "16/B374D848".
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xffffffff)
}
