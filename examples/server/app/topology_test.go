package app

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/replica"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

const goodTopology = `# two shards
shards:
  - name: users-a
    range: -80          # unquoted: YAML reads a number, the range is its text
    primary: postgres://app:${PG_PASSWORD}@10.0.0.1:5432/app
    replicas:
      - postgres://app:$PG_PASSWORD@10.0.0.2:5432/app
      - "host=10.0.0.3 user=app password=$PG_PASSWORD dbname=app"
  - range: "80-"
    primary: postgres://app:lit$$eral@10.0.1.1:5432/app
replica:
  check_interval: 100ms
  max_lag: 2s
  max_lag_bytes: 1048576
  fallback: error
  max_fallback_rate: 50.5
  max_conns: 20
cache:
  capacity: 5000
  ttl: 1m
  negative_ttl: 500ms
channel: my_channel
`

func TestParseTopology(t *testing.T) {
	got, err := parseTopology("t.yaml", []byte(goodTopology), env(map[string]string{"PG_PASSWORD": "pw"}))
	require.NoError(t, err)
	want := &Topology{
		Shards: []ShardTopology{
			{Name: "users-a", Range: "-80", Primary: "postgres://app:pw@10.0.0.1:5432/app", Replicas: []string{
				"postgres://app:pw@10.0.0.2:5432/app", "host=10.0.0.3 user=app password=pw dbname=app"}},
			{Name: "80-", Range: "80-", Primary: "postgres://app:lit$eral@10.0.1.1:5432/app"},
		},
		Replica:  replica.Options{CheckInterval: 100 * time.Millisecond, MaxLag: 2 * time.Second, MaxLagBytes: 1 << 20, Fallback: replica.FallbackError, MaxFallbackRate: 50.5},
		MaxConns: 20,
		Cache:    CacheTopology{Capacity: 5000, TTL: time.Minute, NegativeTTL: 500 * time.Millisecond},
		Channel:  "my_channel",
	}
	assert.Equal(t, want, got)
}

func TestParseTopologyRefuses(t *testing.T) {
	const secret = "Zq9-not-shown"
	shards := "shards:\n  - range: \"-80\"\n    primary: postgres://u@h/db\n  - range: \"80-\"\n    primary: postgres://u@h/db\n"
	tests := []struct {
		name, yaml string
		want       string // file:line: key: ...
	}{
		{"empty", "", "t.yaml: empty file"},
		{"not YAML", "shards: [", "t.yaml:1: "},
		{"tab indent", "shards:\n\t- range: x\n", "t.yaml:2: "},
		{"not a mapping", "- a\n- b\n", "t.yaml:1: want a mapping"},
		{"unknown top key", shards + "replicas: 2\n", "t.yaml:6: replicas: unknown key"},
		{"repeated key", shards + "channel: a\nchannel: b\n", "t.yaml:7: channel: repeated key"},
		{"no shards", "replica:\n  max_lag: 1s\n", "shards: missing"},
		{"shards not a list", "shards: 3\n", "t.yaml:1: shards: want a list"},
		{"unknown shard key", "shards:\n  - range: \"-\"\n    primary: postgres://u@h/db\n    replica: postgres://u@h/db\n", "t.yaml:4: shards[0].replica: unknown key"},
		{"missing range", "shards:\n  - primary: postgres://u@h/db\n", "t.yaml:2: shards[0].range: missing"},
		{"missing primary", "shards:\n  - range: \"-\"\n", "t.yaml:2: shards[0].primary: missing"},
		{"bad range", "shards:\n  - range: \"-8\"\n    primary: postgres://u@h/db\n", "t.yaml:2: shards[0].range: "},
		{"gap", "shards:\n  - range: \"-40\"\n    primary: postgres://u@h/db\n  - range: \"80-\"\n    primary: postgres://u@h/db\n", "t.yaml:2: shards: "},
		{"overlap", "shards:\n  - range: \"-\"\n    primary: postgres://u@h/db\n  - range: \"80-\"\n    primary: postgres://u@h/db\n", "overlap"},
		{"duplicate name", "shards:\n  - name: a\n    range: \"-80\"\n    primary: postgres://u@h/db\n  - name: a\n    range: \"80-\"\n    primary: postgres://u@h/db\n", "t.yaml:5: shards[1].name: \"a\" is also"},
		{"replicas not a list", "shards:\n  - range: \"-\"\n    primary: postgres://u@h/db\n    replicas: postgres://u@h/db\n", "t.yaml:4: shards[0].replicas: want a list"},
		{"unset variable", "shards:\n  - range: \"-\"\n    primary: postgres://u:$NOPE@h/db\n", "t.yaml:3: shards[0].primary: environment variable $NOPE is not set"},
		{"bad DSN", "shards:\n  - range: \"-\"\n    primary: postgres://u:$PW@h:notaport/db\n", "t.yaml:3: shards[0].primary: not a valid DSN"},
		{"bad replica DSN", "shards:\n  - range: \"-\"\n    primary: postgres://u@h/db\n    replicas:\n      - \"host=h password=$PW port=x\"\n", "t.yaml:5: shards[0].replicas[0]: not a valid DSN"},
		{"null primary", "shards:\n  - range: \"-\"\n    primary:\n", "t.yaml:3: shards[0].primary: want a DSN"},
		{"bad duration", shards + "replica:\n  max_lag: soon\n", "t.yaml:7: replica.max_lag: want a duration"},
		{"negative duration", shards + "replica:\n  check_interval: -1s\n", "t.yaml:7: replica.check_interval: want a duration"},
		{"bad fallback", shards + "replica:\n  fallback: replica\n", "t.yaml:7: replica.fallback: want primary or error"},
		{"negative lag bytes", shards + "replica:\n  max_lag_bytes: -1\n", "t.yaml:7: replica.max_lag_bytes: want a whole number"},
		{"float count", shards + "replica:\n  eject_after: 1.5\n", "t.yaml:7: replica.eject_after: want a whole number"},
		{"huge max_conns", shards + "replica:\n  max_conns: 99999999\n", "t.yaml:7: replica.max_conns"},
		{"NaN rate", shards + "replica:\n  max_fallback_rate: .nan\n", "t.yaml:7: replica.max_fallback_rate"},
		{"unknown replica key", shards + "replica:\n  maxlag: 1s\n", "t.yaml:7: replica.maxlag: unknown key"},
		{"unknown cache key", shards + "cache:\n  size: 10\n", "t.yaml:7: cache.size: unknown key"},
		{"cache not a mapping", shards + "cache: 10\n", "t.yaml:6: cache: want a mapping"},
		{"channel a list", shards + "channel: [a]\n", "t.yaml:6: channel: want a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTopology("t.yaml", []byte(tc.yaml), env(map[string]string{"PW": secret}))
			require.Error(t, err, "accepted")
			assert.Containsf(t, err.Error(), tc.want, "error %q does not say %q", err, tc.want)
			assert.NotContainsf(t, err.Error(), secret, "error %q shows the password", err)
		})
	}
}

func TestWriteTopologyRoundTrip(t *testing.T) {
	in, err := parseTopology("t.yaml", []byte(goodTopology), env(map[string]string{"PG_PASSWORD": `p"w$x`}))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "topology.yaml")
	require.NoError(t, WriteTopology(path, in))
	out, err := LoadTopology(path)
	require.NoError(t, err)
	assert.Equal(t, in, out, "read back")
}
