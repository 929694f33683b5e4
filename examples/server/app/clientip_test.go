package app

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParseTrustedProxies("127.0.0.1/32, 10.0.0.0/8,::1")
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		trusted TrustedProxies
		peer    string
		xff     []string
		want    string
	}{
		{"no proxy trusted: the peer", nil, "10.1.2.3:5000", []string{"203.0.113.9"}, "10.1.2.3"},
		{"untrusted peer: its header ignored", trusted, "198.51.100.7:5000", []string{"203.0.113.9"}, "198.51.100.7"},
		{"trusted peer: the client it names", trusted, "127.0.0.1:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"forged left hops skipped", trusted, "127.0.0.1:5000", []string{"1.1.1.1, 203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", trusted, "127.0.0.1:5000", []string{"203.0.113.9, 10.2.3.4"}, "203.0.113.9"},
		{"two header lines", trusted, "127.0.0.1:5000", []string{"1.1.1.1", "203.0.113.9"}, "203.0.113.9"},
		{"all hops trusted: the leftmost", trusted, "127.0.0.1:5000", []string{"10.9.9.9"}, "10.9.9.9"},
		{"no header: the peer", trusted, "127.0.0.1:5000", nil, "127.0.0.1"},
		{"garbage hop: the last good one", trusted, "127.0.0.1:5000", []string{"203.0.113.9, nonsense"}, "127.0.0.1"},
		{"IPv6 peer trusted", trusted, "[::1]:5000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv4-mapped peer", trusted, "[::ffff:127.0.0.1]:5000", []string{"203.0.113.9"}, "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/users/1", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			assert.Equal(t, tc.want, tc.trusted.clientIP(r))
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 127.0.0.1 ,10.1.2.3/8,,::1/128")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1/32,10.0.0.0/8,::1/128", got.String())
	for _, bad := range []string{"10.0.0.0/33", "localhost", "1.2.3.4/x"} {
		_, err := ParseTrustedProxies(bad)
		assert.ErrorContains(t, err, bad, "ParseTrustedProxies(%q)", bad)
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("127.0.0.1:1", "203.0.113.9, 10.0.0.1")
	f.Add("[::1]:2", "::ffff:1.2.3.4,,")
	trusted, _ := ParseTrustedProxies("127.0.0.0/8,::1,10.0.0.0/8")
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		if peer != "" {
			assert.NotEmpty(t, trusted.clientIP(r), "clientIP(%q, %q)", peer, xff)
		}
	})
}
