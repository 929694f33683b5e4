package app

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Whatever the password holds, a DSN that carries it, and any text that
// quotes that DSN, is scrubbed of it in every spelling.
func TestRedactorScrubsEverySpelling(t *testing.T) {
	passwords := []struct{ name, pw string }{
		{"plain", "Plain9pw"},
		{"colon", "p4ss:w0rd"},
		{"at sign", "p4ss@w0rd"},
		{"slash and question mark", "a/b?c9"},
		{"percent", "100%sure9"},
		{"space and quote", "it's a secret9"},
		{"backslash", `back\slash9`},
		{"everything", secretPW},
	}
	for _, tc := range passwords {
		t.Run(tc.name, func(t *testing.T) {
			urlDSN := "postgres://app:" + strings.TrimPrefix(url.UserPassword("app", tc.pw).String(), "app:") + "@10.0.0.1:5432/app"
			kvDSN := "host=10.0.0.2 user=app password=" + kvQuote(tc.pw) + " dbname=app"
			r := NewRedactor(&Topology{Shards: []ShardTopology{{Primary: urlDSN, Replicas: []string{kvDSN}}}})
			spellings := []string{tc.pw, url.PathEscape(tc.pw), url.QueryEscape(tc.pw),
				strings.TrimPrefix(url.UserPassword("", tc.pw).String(), ":"), kvQuote(tc.pw)}
			for _, text := range []string{
				"connect to " + urlDSN + " failed",
				"cannot parse `" + kvDSN + "`: invalid",
				"password " + tc.pw + " rejected",
				"the escaped " + spellings[3] + " and " + spellings[1] + " too",
			} {
				got := r.String(text)
				for _, s := range spellings {
					assert.NotContainsf(t, got, s, "%q redacted is %q: still holds %q", text, got, s)
				}
				assert.Containsf(t, got, "xxxxx", "%q redacted is %q: no xxxxx", text, got)
			}
		})
	}
	// A URL password the topology does not know of is scrubbed all the same.
	zero := Redactor{}
	assert.Equal(t, "dial postgres://u:xxxxx@h/db: refused", zero.String("dial postgres://u:n%40t-known@h/db: refused"), "unknown URL password")
	assert.Equal(t, "see http://127.0.0.1:8080/users/1 and host=h port=5432", zero.String("see http://127.0.0.1:8080/users/1 and host=h port=5432"), "text without a password changed")
}
