package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(2, 3, func() time.Time { return now })
	steps := []struct {
		name    string
		advance time.Duration
		key     string
		ok      bool
		retry   time.Duration
	}{
		{"burst 1", 0, "a", true, 0},
		{"burst 2", 0, "a", true, 0},
		{"burst 3", 0, "a", true, 0},
		{"empty", 0, "a", false, 500 * time.Millisecond},
		{"another client is not affected", 0, "b", true, 0},
		{"a quarter second: half a token", 250 * time.Millisecond, "a", false, 250 * time.Millisecond},
		{"half a second: one token", 250 * time.Millisecond, "a", true, 0},
		{"empty again", 0, "a", false, 500 * time.Millisecond},
		{"refill caps at the burst", time.Hour, "a", true, 0},
		{"burst 2 after refill", 0, "a", true, 0},
		{"burst 3 after refill", 0, "a", true, 0},
		{"empty after the burst", 0, "a", false, 500 * time.Millisecond},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		ok, retry := l.allow(s.key)
		assert.Equal(t, s.ok, ok, "%s: allowed", s.name)
		assert.Equal(t, s.retry, retry, "%s: retry after", s.name)
	}
	assert.Len(t, l.buckets, 1, "after an hour: want the idle bucket swept")
}

func TestLimiterOff(t *testing.T) {
	var l *limiter = newLimiter(0, 10, nil)
	for range 1000 {
		ok, _ := l.allow("x")
		require.True(t, ok, "a zero rate limited a request")
	}
}

func TestParseFlags(t *testing.T) {
	var sink nopWriter
	tests := []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-config", "t.yaml", "-listen", ":0"}, true},
		{[]string{"-shards", "4", "-replicas", "2", "-data", "/tmp/x"}, true},
		{[]string{"-config", "t.yaml", "-shards", "3"}, false},
		{[]string{"-config", "t.yaml", "-data", "d"}, false},
		{[]string{"-node-id", "1024"}, false},
		{[]string{"extra"}, false},
		{[]string{"-nope"}, false},
	}
	for _, tc := range tests {
		_, err := ParseFlags(tc.args, sink)
		assert.Equal(t, tc.ok, err == nil, "ParseFlags(%q): error %v", tc.args, err)
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
