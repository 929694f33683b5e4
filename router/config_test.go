package router_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/router"
)

// logBuffer is a slog text handler's output, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The router keeps a replica.Options.Logger it is given: the replica sets
// log there, and the router's own events go to Config.Logger.
func TestReplicaLoggerKept(t *testing.T) {
	var mine, sets logBuffer
	cfg := config(t, cluster)
	cfg.Logger = mine.logger()
	cfg.Replica.Logger = sets.logger()
	open(t, cfg)
	assert.Contains(t, sets.String(), "node role", "the replica sets log to Replica.Logger")
	assert.NotContains(t, mine.String(), "node role", "and not to Config.Logger")
	assert.Contains(t, mine.String(), "cache listener up", "the router's own events go to Config.Logger")

	// Without Replica.Logger, everything goes to Config.Logger.
	var all logBuffer
	cfg.Logger, cfg.Replica.Logger = all.logger(), nil
	open(t, cfg)
	assert.Contains(t, all.String(), "node role")
}

// A replica that cannot work (wrong password, wrong database) is logged
// once at warn level with the reason.
func TestMisconfiguredReplicaLoggedOnce(t *testing.T) {
	for _, tc := range []struct{ name, from, to, reason string }{
		{"wrong password", ":pgshard@", ":Wr0ng@", "password authentication failed"},
		{"wrong database", "/pgshard?", "/nosuchdb?", "does not exist (SQLSTATE 3D000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			cfg := config(t, cluster)
			cfg.Logger = logs.logger()
			require.Contains(t, cfg.Shards[0].Replicas[0], tc.from)
			cfg.Shards[0].Replicas[0] = strings.Replace(cfg.Shards[0].Replicas[0], tc.from, tc.to, 1)
			r := open(t, cfg)
			r.Close()
			var warns []string
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "level=WARN") && strings.Contains(line, tc.reason) {
					warns = append(warns, line)
				}
			}
			assert.Len(t, warns, 1, "one warning with the reason %q; log:\n%s", tc.reason, logs.String())
			assert.NotContains(t, logs.String(), "Wr0ng", "no password in the log")
		})
	}
}

// Config.Shards[i].Weights reaches the replica set: a wrong count is refused.
func TestShardWeights(t *testing.T) {
	cfg := config(t, cluster)
	cfg.Shards[0].Weights = []int{3}
	open(t, cfg)
	cfg.Shards[0].Weights = []int{1, 2}
	_, err := router.Open(context.Background(), cfg)
	require.ErrorIs(t, err, router.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Weights")
}
