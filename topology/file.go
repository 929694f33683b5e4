package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileMap is what a map file holds: the shards, nothing else.
type fileMap struct {
	Shards []Shard `yaml:"shards"`
}

// ParseFile reads a map file (YAML, as `pgshard topology show -o yaml`
// writes it):
//
//	shards:
//	  - name: a
//	    range: "-80"
//	    primary: postgres://app:${PG_PASSWORD}@10.0.0.1:5432/app
//	    replicas: ["postgres://app:${PG_PASSWORD}@10.0.0.2:5432/app"]
//	  - name: b
//	    range: "80-"
//	    primary: host=10.0.0.3 dbname=app user=app passfile=/etc/pgshard/pgpass
//	    state: serving
//
// Unknown keys, a gap, an overlap, a node listed twice and a literal
// password are refused; the error names the file, and the line or shard.
// Variables are not expanded: the store keeps them as written.
func ParseFile(file string, data []byte) (*Map, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var fm fileMap
	if err := dec.Decode(&fm); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s: empty file: want a mapping with a shards key", ErrInvalidMap, file)
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalidMap, file, yamlMessage(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: more than one YAML document", ErrInvalidMap, file)
	}
	m := &Map{Shards: fm.Shards}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

// MarshalFile writes m's shards as a map file that ParseFile reads back.
func MarshalFile(m *Map) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(fileMap{Shards: m.Shards}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// yamlMessage turns the decoder's errors into "line N: what" without Go
// type names.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		m = strings.TrimSpace(m)
		if j := strings.Index(m, " in type topology."); j >= 0 {
			m = m[:j]
		}
		m = strings.NewReplacer("into topology.fileMap", "into the map: want a mapping with a shards key",
			"into []topology.Shard", "into shards: want a list",
			"into topology.Shard", "into a shard: want a mapping of name, range, primary, replicas, state",
			"into topology.State", "into a state: want serving or fenced",
			"into []string", "into a list of DSNs").Replace(m)
		msgs[i] = m
	}
	return strings.Join(msgs, "; ")
}
