package router

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/pgshard/pgshard/replica"
)

// Session gives read-your-writes and monotonic reads across requests. It
// records, per shard, the WAL position of the session's last write and the
// newest position its reads have seen; a read in the session goes only to
// a node that has reached that position. It is safe for concurrent use, and
// serialises to a token that an HTTP client carries between requests.
type Session struct {
	mu  sync.Mutex
	lsn map[string]replica.LSN
}

// NewSession returns an empty session: its first reads may go anywhere.
func NewSession() *Session {
	return &Session{lsn: map[string]replica.LSN{}}
}

const (
	tokenVersion  = "1"
	maxTokenLen   = 4096
	maxTokenNames = 1024
)

// Token serialises the session: "1." followed by unpadded URL-safe base64,
// safe in URLs and HTTP headers. An empty session is "1.".
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for _, name := range slices.Sorted(maps.Keys(s.lsn)) {
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		b = binary.AppendUvarint(b, uint64(s.lsn[name]))
	}
	return tokenVersion + "." + base64.RawURLEncoding.EncodeToString(b)
}

// ParseSession reads a token made by Token. A malformed, oversized or
// future-versioned token is refused with an error that says which.
func ParseSession(token string) (*Session, error) {
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidToken, len(token), maxTokenLen)
	}
	version, body, ok := strings.Cut(token, ".")
	if !ok {
		return nil, fmt.Errorf("%w: want VERSION.DATA", ErrInvalidToken)
	}
	if version != tokenVersion {
		return nil, fmt.Errorf("%w: version %.10q, this library reads version %s", ErrInvalidToken, version, tokenVersion)
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: not URL-safe base64: %v", ErrInvalidToken, err)
	}
	s := NewSession()
	for len(b) > 0 {
		if len(s.lsn) == maxTokenNames {
			return nil, fmt.Errorf("%w: more than %d shards", ErrInvalidToken, maxTokenNames)
		}
		n, k := binary.Uvarint(b)
		if k <= 0 || n == 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: bad shard name length", ErrInvalidToken)
		}
		b = b[k:]
		name := string(b[:n])
		b = b[n:]
		lsn, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad position for shard %q", ErrInvalidToken, name)
		}
		b = b[k:]
		if _, dup := s.lsn[name]; dup {
			return nil, fmt.Errorf("%w: shard %q appears twice", ErrInvalidToken, name)
		}
		s.lsn[name] = replica.LSN(lsn)
	}
	return s, nil
}

// LSN returns the position the session requires on the named shard, 0 if none.
func (s *Session) LSN(shard string) replica.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lsn[shard]
}

// observe raises the session's position on a shard; it never lowers it.
func (s *Session) observe(shard string, lsn replica.LSN) {
	if lsn == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if lsn > s.lsn[shard] {
		s.lsn[shard] = lsn
	}
}

type ctxKey int

const (
	sessionKey ctxKey = iota
	primaryKey
	loadKey
	infoKey
)

// WithSession returns a context whose reads and writes go through s.
func WithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey, s)
}

// SessionFrom returns the session of ctx, or nil.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey).(*Session)
	return s
}

// WithPrimary returns a context whose reads go to primaries.
func WithPrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, primaryKey, true)
}

func primaryFrom(ctx context.Context) bool {
	p, _ := ctx.Value(primaryKey).(bool)
	return p
}
