package replica_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
			require.NoError(t, err, "ParseLSN(%q)", tc.in)
			assert.Equal(t, tc.want, got, "ParseLSN(%q)", tc.in)
			assert.Equal(t, tc.text, got.String(), "String()")
		})
	}
}

func TestParseLSNErrors(t *testing.T) {
	for _, in := range []string{"", "/", "0/", "/0", "16B374D848", "1/2/3", "g/0", "0/-1", "+1/0", "123456789/0", "0/123456789", " 0/0", "0/0 "} {
		_, err := replica.ParseLSN(in)
		if !assert.Error(t, err, "ParseLSN(%q) succeeded, want an error", in) {
			continue
		}
		assert.ErrorIs(t, err, replica.ErrInvalidLSN, "ParseLSN(%q)", in)
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
		require.NoError(t, err, "ParseLSN(%q) = %s, which does not parse back", s, l)
		require.Equal(t, l, back, "ParseLSN(%q) = %s, which parses back to another LSN", s, l)
	})
}
