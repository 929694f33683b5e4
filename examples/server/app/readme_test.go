package app

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's quick start, pasted whole into bash against a running
// server, runs from start to end and does what its comments say.
func TestReadmeQuickStartRuns(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (make deps installs it): %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../../../README.md")
	require.NoError(t, err)
	block := quickStartBlock(t, string(readme))

	s := serveConfig(t, "-log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", block)
	cmd.Env = append(os.Environ(), "BASE="+s.base)
	out, err := cmd.CombinedOutput()
	text := string(out)
	require.NoError(t, err, "the quick start failed:\n%s", text)
	for _, want := range []string{
		"HTTP/1.1 201 Created",
		"X-Shard: shard",
		"X-Consistency-Token: ",
		"HTTP/1.1 200 OK",
		`"name":"Ada Lovelace"`,
		`"body": "Hello, shards"`, // in the list read with the post's token, and in the feed
	} {
		assert.Contains(t, text, want)
	}
	assert.Equal(t, 2, strings.Count(text, `"body": "Hello, shards"`), "the post in its user's list and in the feed:\n%s", text)
	assert.NotContains(t, text, `"error"`)
}

// quickStartBlock is the first sh block after the README's "Quick start
// (reference server)" heading.
func quickStartBlock(t *testing.T, readme string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "## Quick start (reference server)")
	require.True(t, ok, "README has no quick start section")
	_, rest, ok = strings.Cut(rest, "```sh\n")
	require.True(t, ok, "the quick start has no sh block")
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok, "the quick start's sh block does not end")
	return block
}
