package topology

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// varRef matches a value that is wholly one environment variable.
var varRef = regexp.MustCompile(`^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)$`)

// ExpandDSN replaces $VAR and ${VAR} in dsn with the values lookup gives
// ($$ is a literal $). A variable lookup does not know is an error that
// names it. The result may hold a password: never print it.
func ExpandDSN(dsn string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	s := os.Expand(dsn, func(name string) string {
		if name == "$" {
			return "$"
		}
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, "$"+name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("topology: environment variable %s is not set", strings.Join(missing, ", "))
	}
	return s, nil
}

// checkDSN refuses a DSN that is empty, cannot be parsed, or holds a
// literal password. It returns the node's identity (host:port/database),
// with every variable standing for a placeholder. Its errors never quote
// the DSN.
func checkDSN(dsn string) (string, error) {
	if strings.TrimSpace(dsn) == "" {
		return "", errors.New("empty DSN")
	}
	if err := literalPassword(dsn); err != nil {
		return "", err
	}
	s, _ := ExpandDSN(dsn, func(string) (string, bool) { return "x", true })
	cfg, err := pgconn.ParseConfig(s)
	if err != nil {
		if isURL(s) {
			return "", errors.New("not a valid DSN: not a valid URL")
		}
		return "", errors.New("not a valid DSN: want a postgres:// URL or key=value pairs")
	}
	return fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database), nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// errLiteralPassword says what to do instead.
var errLiteralPassword = errors.New("holds a literal password: name it as ${VAR} (an environment variable) or use passfile=/path")

// literalPassword refuses a password that is not wholly a variable.
func literalPassword(dsn string) error {
	if isURL(dsn) {
		rest := dsn[strings.Index(dsn, "://")+3:]
		authority, query := rest, ""
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority = rest[:i]
		}
		if i := strings.IndexByte(rest, '?'); i >= 0 {
			query = rest[i+1:]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			if _, pw, ok := strings.Cut(authority[:at], ":"); ok && pw != "" {
				if u, err := url.PathUnescape(pw); err == nil {
					pw = u
				}
				if !varRef.MatchString(pw) {
					return errLiteralPassword
				}
			}
		}
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if uk, err := url.QueryUnescape(k); err == nil && uk == "password" {
				if uv, err := url.QueryUnescape(v); err == nil {
					v = uv
				}
				if v != "" && !varRef.MatchString(v) {
					return errLiteralPassword
				}
			}
		}
		return nil
	}
	pairs, err := keywordPairs(dsn)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		if p[0] == "password" && p[1] != "" && !varRef.MatchString(p[1]) {
			return errLiteralPassword
		}
	}
	return nil
}

// keywordPairs splits a libpq key=value connection string: values are
// bare words or single-quoted, with backslash escapes.
func keywordPairs(s string) ([][2]string, error) {
	var out [][2]string
	i := 0
	skip := func() {
		for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) >= 0 {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && strings.IndexByte(" \t\n\r\f\v", s[i]) < 0 {
			i++
		}
		key := s[start:i]
		skip()
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, errors.New("not a valid DSN: want key=value pairs")
		}
		i++
		skip()
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("not a valid DSN: unterminated quoted value")
				}
				c := s[i]
				i++
				if c == '\'' {
					break
				}
				if c == '\\' && i < len(s) {
					c = s[i]
					i++
				}
				v.WriteByte(c)
			}
		} else {
			for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) < 0 {
				c := s[i]
				i++
				if c == '\\' && i < len(s) {
					c = s[i]
					i++
				}
				v.WriteByte(c)
			}
		}
		out = append(out, [2]string{key, v.String()})
	}
}
