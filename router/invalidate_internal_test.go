package router

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestEncodeKeysSplitsPayloads(t *testing.T) {
	var keys []string
	for i := range 3000 {
		keys = append(keys, fmt.Sprintf("user:%d:\"quoted\"\n", i))
	}
	payloads, err := encodeKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(payloads) < 2 {
		t.Fatalf("%d payloads for %d keys, want several", len(payloads), len(keys))
	}
	var back []string
	for _, p := range payloads {
		if len(p) > maxPayload {
			t.Errorf("payload of %d bytes, over %d", len(p), maxPayload)
		}
		got, ok := decodeKeys(p)
		if !ok {
			t.Fatalf("payload %.40q does not decode", p)
		}
		back = append(back, got...)
	}
	if !slices.Equal(back, keys) {
		t.Errorf("keys do not survive the round trip: %d in, %d out", len(keys), len(back))
	}

	if _, err := encodeKeys([]string{strings.Repeat("k", maxPayload)}); err == nil {
		t.Error("a key longer than a payload was accepted")
	}
	if _, ok := decodeKeys("not json"); ok {
		t.Error("a foreign payload decoded")
	}
}
