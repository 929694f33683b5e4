package topology_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgshard/pgshard/topology"
)

const (
	dsnA  = "postgres://app:${PW}@10.0.0.1:5432/app"
	dsnA2 = "postgres://app:${PW}@10.0.0.2:5432/app"
	dsnB  = "host=10.0.0.3 port=5432 dbname=app user=app password=$PW"
	dsnB2 = "host=10.0.0.4 dbname=app user=app passfile=/etc/pgshard/pgpass"
)

func twoShards() *topology.Map {
	return &topology.Map{Shards: []topology.Shard{
		{Name: "a", Range: "-80", Primary: dsnA, Replicas: []string{dsnA2}},
		{Name: "b", Range: "80-", Primary: dsnB, Replicas: []string{dsnB2}},
	}}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *topology.Map)
		want string // "" means valid
	}{
		{"valid", func(*topology.Map) {}, ""},
		{"gap", func(m *topology.Map) { m.Shards[1].Range = "90-" }, "gap 80-90 between shards"},
		{"overlap", func(m *topology.Map) { m.Shards[1].Range = "70-" }, `overlap on 70-80`},
		{"gap at the end", func(m *topology.Map) { m.Shards[1].Range = "80-f0" }, "gap f0-: no shard owns the end"},
		{"no shards", func(m *topology.Map) { m.Shards = nil }, "no shards"},
		{"bad range", func(m *topology.Map) { m.Shards[0].Range = "-8" }, "shards[0].range"},
		{"same name", func(m *topology.Map) { m.Shards[1].Name = "a" }, `name "a" is also the name of shards[0]`},
		{"bad name", func(m *topology.Map) { m.Shards[1].Name = "b'; --" }, "shards[1].name"},
		{"same node twice in a shard", func(m *topology.Map) { m.Shards[0].Replicas = []string{dsnA} },
			"shards[0] (a).replicas[0]: node 10.0.0.1:5432/app is also shards[0] (a).primary"},
		{"same node under two shards", func(m *topology.Map) { m.Shards[1].Replicas = []string{dsnA2} },
			"shards[1] (b).replicas[0]: node 10.0.0.2:5432/app is also shards[0] (a).replicas[0]"},
		{"literal password in a URL", func(m *topology.Map) { m.Shards[0].Primary = "postgres://app:hunter2@10.0.0.9/app" },
			"shards[0] (a).primary: holds a literal password"},
		{"literal password in key=value", func(m *topology.Map) { m.Shards[1].Primary = "host=h password='hunter2' dbname=app" },
			"shards[1] (b).primary: holds a literal password"},
		{"literal password in a URL query", func(m *topology.Map) { m.Shards[1].Primary = "postgres://app@h/app?password=hunter2" },
			"holds a literal password"},
		{"missing primary", func(m *topology.Map) { m.Shards[0].Primary = "" }, "shards[0] (a).primary: missing"},
		{"bad state", func(m *topology.Map) { m.Shards[0].State = "draining" }, `shards[0] (a).state: "draining"`},
		{"bad DSN", func(m *topology.Map) { m.Shards[0].Primary = "host=h port=notaport" }, "shards[0] (a).primary: not a valid DSN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := twoShards()
			tc.edit(m)
			err := m.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				require.Equal(t, topology.StateServing, m.Shards[0].State, "an empty state is serving")
				return
			}
			require.ErrorIs(t, err, topology.ErrInvalidMap)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestParseFile(t *testing.T) {
	good := "shards:\n" +
		"  - {name: a, range: \"-80\", primary: \"" + dsnA + "\"}\n" +
		"  - name: b\n    range: \"80-\"\n    primary: \"" + dsnB + "\"\n    replicas: [\"" + dsnB2 + "\"]\n    state: fenced\n"
	m, err := topology.ParseFile("map.yaml", []byte(good))
	require.NoError(t, err)
	require.Len(t, m.Shards, 2)
	require.Equal(t, topology.StateFenced, m.Shards[1].State)
	require.Equal(t, dsnA, m.Shards[0].Primary, "variables are kept as written")

	out, err := topology.MarshalFile(m)
	require.NoError(t, err)
	back, err := topology.ParseFile("again.yaml", out)
	require.NoError(t, err)
	require.Equal(t, m.Shards, back.Shards)

	for _, tc := range []struct{ name, file, want string }{
		{"empty", "", "map.yaml: empty file"},
		{"unknown key", "shards: []\nshard: x\n", "map.yaml: line 2: field shard not found"},
		{"unknown shard key", "shards:\n  - {name: a, range: \"-\", primary: \"host=h\", primry: x}\n", "field primry not found"},
		{"gap", strings.Replace(good, `range: "80-"`, `range: "90-"`, 1), "map.yaml: topology: invalid map: shard: invalid shard map: gap 80-90"},
		{"two documents", good + "---\nshards: []\n", "more than one YAML document"},
		{"not a mapping", "- a\n", "map.yaml: line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := topology.ParseFile("map.yaml", []byte(tc.file))
			require.ErrorIs(t, err, topology.ErrInvalidMap)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestEdits(t *testing.T) {
	m := twoShards()
	require.NoError(t, m.AddReplica("a", "postgres://app:${PW}@10.0.0.5:5432/app"))
	require.NoError(t, m.Validate())
	require.NoError(t, m.SetPrimary("a", "10.0.0.2:5432/app"), "a node named by its identity")
	require.Equal(t, dsnA2, m.Shards[0].Primary)
	require.Equal(t, []string{dsnA, "postgres://app:${PW}@10.0.0.5:5432/app"}, m.Shards[0].Replicas)
	require.NoError(t, m.RemoveReplica("a", dsnA))
	require.Equal(t, []string{"postgres://app:${PW}@10.0.0.5:5432/app"}, m.Shards[0].Replicas)

	err := m.RemoveReplica("a", "postgres://app:secret@10.0.0.9/app")
	require.ErrorIs(t, err, topology.ErrInvalidMap)
	require.NotContains(t, err.Error(), "secret")
	require.ErrorContains(t, m.SetPrimary("z", dsnA), `no shard "z"`)
	require.NoError(t, m.AddReplica("b", dsnA2))
	require.ErrorContains(t, m.Validate(), "node 10.0.0.2:5432/app is also shards[0] (a).primary")
}

func TestExpandDSN(t *testing.T) {
	env := map[string]string{"PW": "s3cret"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	got, err := topology.ExpandDSN("postgres://u:${PW}@h/db?x=$$1", lookup)
	require.NoError(t, err)
	require.Equal(t, "postgres://u:s3cret@h/db?x=$1", got)
	_, err = topology.ExpandDSN("host=h password=$NOPE", lookup)
	require.EqualError(t, err, "topology: environment variable $NOPE is not set")
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte("shards:\n  - {name: a, range: \"-80\", primary: \"" + dsnA + "\"}\n  - {name: b, range: \"80-\", primary: \"" + dsnB + "\", replicas: [\"" + dsnB2 + "\"]}\n"))
	f.Add([]byte("shards:\n  - {range: \"-\", primary: \"host='a b' password='x\\\\'y'\"}\n"))
	f.Add([]byte("shards: [{range: '-', primary: 'postgres://u:%24%7BPW%7D@h/d?password=$X'}]"))
	f.Add([]byte("shards: &a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := topology.ParseFile("f.yaml", data)
		if err != nil {
			require.ErrorIs(t, err, topology.ErrInvalidMap)
			return
		}
		out, err := topology.MarshalFile(m)
		require.NoError(t, err)
		back, err := topology.ParseFile("g.yaml", out)
		require.NoError(t, err, "a valid map reads back: %s", out)
		require.Equal(t, m.Shards, back.Shards)
	})
}
