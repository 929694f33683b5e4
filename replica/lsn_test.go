package replica_test

import (
	"errors"
	"testing"

	"github.com/pgshard/pgshard/replica"
)

func TestParseLSN(t *testing.T) {
	tests := []struct {
		in   string
		want replica.LSN
		text string
	}{
		{"0/0", 0, "0/0"},
		{"16/B374D848", 0x16B374D848, "16/B374D848"},
		{"16/b374d848", 0x16B374D848, "16/B374D848"},
		{"0/1", 1, "0/1"},
		{"1/0", 1 << 32, "1/0"},
		{"FFFFFFFF/FFFFFFFF", 1<<64 - 1, "FFFFFFFF/FFFFFFFF"},
		{"00000001/00000002", 1<<32 | 2, "1/2"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := replica.ParseLSN(tc.in)
			if err != nil {
				t.Fatalf("ParseLSN(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseLSN(%q) = %#x, want %#x", tc.in, uint64(got), uint64(tc.want))
			}
			if s := got.String(); s != tc.text {
				t.Errorf("String() = %q, want %q", s, tc.text)
			}
		})
	}
}

func TestParseLSNErrors(t *testing.T) {
	for _, in := range []string{"", "/", "0/", "/0", "16B374D848", "1/2/3", "g/0", "0/-1", "+1/0", "123456789/0", "0/123456789", " 0/0", "0/0 "} {
		_, err := replica.ParseLSN(in)
		if err == nil {
			t.Errorf("ParseLSN(%q) succeeded, want an error", in)
			continue
		}
		if !errors.Is(err, replica.ErrInvalidLSN) {
			t.Errorf("ParseLSN(%q) error %v does not wrap ErrInvalidLSN", in, err)
		}
	}
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "", "/", "1/2/3", "123456789/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := replica.ParseLSN(s)
		if err != nil {
			return
		}
		back, err := replica.ParseLSN(l.String())
		if err != nil || back != l {
			t.Fatalf("ParseLSN(%q) = %s, which parses back to %v, %v", s, l, back, err)
		}
	})
}
