package replica

import (
	"net/url"
	"regexp"
	"strings"
)

var passwordKV = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redact removes any password of dsn from msg, and any password=... pair.
// Error texts from connection-string parsing may quote the string itself.
func redact(msg, dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	for _, m := range passwordKV.FindAllStringSubmatch(dsn, -1) {
		pw := strings.Trim(m[2], "'")
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return passwordKV.ReplaceAllString(msg, "${1}xxxxx")
}
