package app

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// The server keeps every password it knows of and scrubs them, and any
// password=... pair, from whatever text it shows: error bodies, logs, the
// dashboard. The library already does so; this is the second lock.

var passwordKV = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// passwordURL finds the password of a URL with user information, such as
// postgres://user:PASSWORD@host/db, however it is escaped.
var passwordURL = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://[^:/?#@\s]*:)([^@\s]*)@`)

// secretsOf returns the passwords in a DSN, in URL or key=value form. A
// URL's password is returned decoded, as it is written in the DSN, and as
// the url package would escape it for a path or for user information: a
// password with a ':' or an '@' is written differently in each.
func secretsOf(dsn string) []string {
	var out []string
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw, url.PathEscape(pw), strings.TrimPrefix(url.UserPassword("", pw).String(), ":"))
			if m := passwordURL.FindStringSubmatch(dsn); m != nil && m[2] != "" {
				out = append(out, m[2])
			}
		}
	}
	for _, m := range passwordKV.FindAllStringSubmatch(dsn, -1) {
		if pw := strings.Trim(m[2], "'"); pw != "" {
			out = append(out, pw)
		}
	}
	return out
}

// redactSecrets replaces each secret in msg, longest first so that no
// part of one is left, and any password=... pair or URL password.
func redactSecrets(msg string, secrets []string) string {
	secrets = slices.Clone(secrets)
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	msg = passwordURL.ReplaceAllString(msg, "${1}xxxxx@")
	return passwordKV.ReplaceAllString(msg, "${1}xxxxx")
}

// Redactor scrubs a fixed set of secrets. Its zero value scrubs only
// password=... pairs. It is safe for concurrent use.
type Redactor struct{ secrets []string }

// NewRedactor scrubs the passwords of t's servers.
func NewRedactor(t *Topology) Redactor {
	var r Redactor
	for _, s := range t.Shards {
		r.secrets = append(r.secrets, secretsOf(s.Primary)...)
		for _, d := range s.Replicas {
			r.secrets = append(r.secrets, secretsOf(d)...)
		}
	}
	return r
}

// String returns s with every secret replaced by xxxxx.
func (r Redactor) String(s string) string { return redactSecrets(s, r.secrets) }

// Handler wraps next so that every message and attribute it receives is
// scrubbed first: a log built on it never shows a password of the topology.
func (r Redactor) Handler(next slog.Handler) slog.Handler { return redactHandler{next: next, r: r} }

// redactHandler is a slog.Handler that scrubs messages and string
// attributes before passing records on.
type redactHandler struct {
	next slog.Handler
	r    Redactor
}

func (h redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.String(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = h.attr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.String(err.Error()))
		}
		return slog.String(a.Key, h.r.String(v.String()))
	}
	return a
}

func (h redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return redactHandler{next: h.next.WithAttrs(clean), r: h.r}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{next: h.next.WithGroup(name), r: h.r}
}
