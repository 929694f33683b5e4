package router

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncodeKeysSplitsPayloads(t *testing.T) {
	var keys []string
	for i := range 3000 {
		keys = append(keys, fmt.Sprintf("user:%d:\"quoted\"\n", i))
	}
	payloads, err := encodeKeys(keys)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(payloads), 2, "%d payloads for %d keys, want several", len(payloads), len(keys))
	var back []string
	for _, p := range payloads {
		assert.LessOrEqual(t, len(p), maxPayload, "payload of %d bytes, over %d", len(p), maxPayload)
		got, ok := decodeKeys(p)
		require.True(t, ok, "payload %.40q does not decode", p)
		back = append(back, got...)
	}
	assert.True(t, slices.Equal(back, keys), "keys do not survive the round trip: %d in, %d out", len(keys), len(back))

	_, err = encodeKeys([]string{strings.Repeat("k", maxPayload)})
	assert.Error(t, err, "a key longer than a payload was accepted")
	_, ok := decodeKeys("not json")
	assert.False(t, ok, "a foreign payload decoded")
}
