package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplaceSection(t *testing.T) {
	section := reportBegin + "\nnew figures\n" + reportEnd + "\n"
	for _, tc := range []struct {
		name, before, want string
	}{
		{"no file", "", section},
		{"appended after the chaos report", "# Reliability\n\ntable\n", "# Reliability\n\ntable\n\n" + section},
		{"replaced in place", "head\n\n" + reportBegin + "\nold\n" + reportEnd + "\ntail\n", "head\n\n" + section + "tail\n"},
		{"an unterminated section is left, the new one appended", "head\n" + reportBegin + "\nold\n",
			"head\n" + reportBegin + "\nold\n\n" + section},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "RELIABILITY.md")
			if tc.before != "" {
				require.NoError(t, os.WriteFile(path, []byte(tc.before), 0o644))
			}
			require.NoError(t, replaceSection(path, section))
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
}
