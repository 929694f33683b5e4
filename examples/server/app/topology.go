package app

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.yaml.in/yaml/v3"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/shard"
)

// Topology is what a -config file describes: the shards, how to use their
// replicas and how much to cache. It is a plain value.
type Topology struct {
	Shards  []ShardTopology
	Replica replica.Options
	// MaxConns caps each node's connection pool; 0 keeps pgx's default.
	MaxConns int32
	Cache    CacheTopology
	// Channel is the LISTEN/NOTIFY channel for cache invalidations; ""
	// keeps the router's default.
	Channel string
}

// ShardTopology is one shard of a Topology: its name, key range (such as
// "-80") and the DSNs of its nodes.
type ShardTopology struct {
	Name     string
	Range    string
	Primary  string // after $VAR expansion: may hold a password
	Replicas []string
}

// CacheTopology sizes the server's users cache; zero values keep the
// cache package's defaults.
type CacheTopology struct {
	Capacity    int
	TTL         time.Duration
	NegativeTTL time.Duration
}

// configError names the place of a bad value in a topology file.
type configError struct {
	File string
	Line int
	Key  string // dotted path, such as shards[1].range
	Msg  string
}

func (e *configError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// LoadTopology reads a topology file; see parseTopology.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseTopology(path, data, os.LookupEnv)
}

// parseTopology reads a YAML topology. Every unknown key and invalid value
// is refused with the file, line and key named. DSNs may use $VAR or
// ${VAR}, taken from lookup ($$ is a literal $); an unset variable is an
// error that names it. No error quotes a DSN.
func parseTopology(file string, data []byte, lookup func(string) (string, bool)) (*Topology, error) {
	p := &topoParser{file: file, lookup: lookup}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &configError{File: file, Msg: "empty file: want a mapping with a shards key"}
	}
	t := &Topology{}
	root := doc.Content[0]
	err := p.mapping(root, "", map[string]func(*yaml.Node, string) error{
		"shards":  func(n *yaml.Node, key string) error { return p.shards(n, key, t) },
		"replica": func(n *yaml.Node, key string) error { return p.replica(n, key, t) },
		"cache":   func(n *yaml.Node, key string) error { return p.cache(n, key, &t.Cache) },
		"channel": func(n *yaml.Node, key string) error { return p.str(n, key, &t.Channel) },
	})
	if err != nil {
		return nil, err
	}
	if len(t.Shards) == 0 {
		return nil, p.fail(root, "shards", "missing: list at least one shard")
	}
	return t, nil
}

// yamlError turns "yaml: line 3: ..." into "file:3: ...".
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, after
			}
		}
	}
	return &configError{File: file, Line: line, Msg: msg}
}

type topoParser struct {
	file   string
	lookup func(string) (string, bool)
}

func (p *topoParser) fail(n *yaml.Node, key, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &configError{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapping walks a mapping node, calling each known key's function and
// refusing unknown and repeated keys.
func (p *topoParser) mapping(n *yaml.Node, prefix string, keys map[string]func(*yaml.Node, string) error) error {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return p.fail(n, strings.TrimSuffix(prefix, "."), "want a mapping of %s", strings.Join(slices.Sorted(mapKeys(keys)), ", "))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		name := k.Value
		f, ok := keys[name]
		if !ok {
			return p.fail(k, prefix+name, "unknown key (want one of %s)", strings.Join(slices.Sorted(mapKeys(keys)), ", "))
		}
		if seen[name] {
			return p.fail(k, prefix+name, "repeated key")
		}
		seen[name] = true
		if err := f(v, prefix+name); err != nil {
			return err
		}
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (p *topoParser) shards(n *yaml.Node, key string, t *Topology) error {
	if n.Kind != yaml.SequenceNode {
		return p.fail(n, key, "want a list of shards")
	}
	ranges := map[string]shard.Range{}
	names := map[string]int{}
	for i, item := range n.Content {
		item = resolve(item)
		k := fmt.Sprintf("%s[%d]", key, i)
		var sc ShardTopology
		var rangeNode *yaml.Node
		err := p.mapping(item, k+".", map[string]func(*yaml.Node, string) error{
			"name":  func(n *yaml.Node, key string) error { return p.str(n, key, &sc.Name) },
			"range": func(n *yaml.Node, key string) error { rangeNode = n; return p.str(n, key, &sc.Range) },
			"primary": func(n *yaml.Node, key string) error {
				return p.dsn(n, key, &sc.Primary)
			},
			"replicas": func(n *yaml.Node, key string) error {
				if n.Kind != yaml.SequenceNode {
					return p.fail(n, key, "want a list of DSNs")
				}
				for j, r := range n.Content {
					var dsn string
					if err := p.dsn(resolve(r), fmt.Sprintf("%s[%d]", key, j), &dsn); err != nil {
						return err
					}
					sc.Replicas = append(sc.Replicas, dsn)
				}
				return nil
			},
		})
		if err != nil {
			return err
		}
		if rangeNode == nil {
			return p.fail(item, k+".range", "missing: give the shard's key range, such as \"-80\"")
		}
		if sc.Primary == "" {
			return p.fail(item, k+".primary", "missing: give the DSN of the shard's primary")
		}
		rng, err := shard.ParseRange(sc.Range)
		if err != nil {
			return p.fail(rangeNode, k+".range", "%v", err)
		}
		if sc.Name == "" {
			sc.Name = rng.String()
		}
		if j, dup := names[sc.Name]; dup {
			return p.fail(item, k+".name", "%q is also the name of shards[%d]", sc.Name, j)
		}
		names[sc.Name] = i
		ranges[sc.Name] = rng
		t.Shards = append(t.Shards, sc)
	}
	if _, err := shard.NewMap(ranges); err != nil {
		return p.fail(n, key, "%v", err)
	}
	return nil
}

func (p *topoParser) replica(n *yaml.Node, key string, t *Topology) error {
	o := &t.Replica
	dur := func(d *time.Duration) func(*yaml.Node, string) error {
		return func(n *yaml.Node, key string) error { return p.duration(n, key, d) }
	}
	count := func(v *int) func(*yaml.Node, string) error {
		return func(n *yaml.Node, key string) error {
			i, err := p.integer(n, key, 0, math.MaxInt32)
			*v = int(i)
			return err
		}
	}
	return p.mapping(n, key+".", map[string]func(*yaml.Node, string) error{
		"check_interval":  dur(&o.CheckInterval),
		"check_timeout":   dur(&o.CheckTimeout),
		"max_lag":         dur(&o.MaxLag),
		"max_wait":        dur(&o.MaxWait),
		"connect_timeout": dur(&o.ConnectTimeout),
		"eject_after":     count(&o.EjectAfter),
		"admit_after":     count(&o.AdmitAfter),
		"max_lag_bytes": func(n *yaml.Node, key string) error {
			var err error
			o.MaxLagBytes, err = p.integer(n, key, 0, math.MaxInt64)
			return err
		},
		"max_conns": func(n *yaml.Node, key string) error {
			i, err := p.integer(n, key, 0, 10000)
			t.MaxConns = int32(i)
			return err
		},
		"max_fallback_rate": func(n *yaml.Node, key string) error {
			f, err := strconv.ParseFloat(n.Value, 64)
			if n.Kind != yaml.ScalarNode || err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
				return p.fail(n, key, "want a number of reads per second, 0 or more")
			}
			o.MaxFallbackRate = f
			return nil
		},
		"fallback": func(n *yaml.Node, key string) error {
			switch v := n.Value; {
			case n.Kind == yaml.ScalarNode && v == "primary":
				o.Fallback = replica.FallbackPrimary
			case n.Kind == yaml.ScalarNode && v == "error":
				o.Fallback = replica.FallbackError
			default:
				return p.fail(n, key, "want primary or error")
			}
			return nil
		},
	})
}

func (p *topoParser) cache(n *yaml.Node, key string, c *CacheTopology) error {
	return p.mapping(n, key+".", map[string]func(*yaml.Node, string) error{
		"capacity": func(n *yaml.Node, key string) error {
			i, err := p.integer(n, key, 0, 1<<30)
			c.Capacity = int(i)
			return err
		},
		"ttl":          func(n *yaml.Node, key string) error { return p.duration(n, key, &c.TTL) },
		"negative_ttl": func(n *yaml.Node, key string) error { return p.duration(n, key, &c.NegativeTTL) },
	})
}

func (p *topoParser) str(n *yaml.Node, key string, dst *string) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return p.fail(n, key, "want a string")
	}
	*dst = n.Value
	return nil
}

func (p *topoParser) integer(n *yaml.Node, key string, lo, hi int64) (int64, error) {
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if n.Kind != yaml.ScalarNode || err != nil || v < lo || v > hi {
		return 0, p.fail(n, key, "want a whole number from %d to %d", lo, hi)
	}
	return v, nil
}

func (p *topoParser) duration(n *yaml.Node, key string, dst *time.Duration) error {
	d, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || d < 0 {
		return p.fail(n, key, "want a duration such as 250ms or 2s, 0 or more")
	}
	*dst = d
	return nil
}

// dsn reads a connection string, expanding $VAR and ${VAR}. It never puts
// the string in an error: after expansion it may hold a password.
func (p *topoParser) dsn(n *yaml.Node, key string, dst *string) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Value == "" {
		return p.fail(n, key, "want a DSN (a postgres:// URL or key=value string)")
	}
	var missing, secrets []string
	s := os.Expand(n.Value, func(name string) string {
		if name == "$" {
			return "$"
		}
		v, ok := p.lookup(name)
		if !ok {
			missing = append(missing, "$"+name)
		}
		secrets = append(secrets, v) // whatever comes from the environment may be a password
		return v
	})
	if len(missing) > 0 {
		return p.fail(n, key, "environment variable %s is not set", strings.Join(missing, ", "))
	}
	if _, err := pgconn.ParseConfig(s); err != nil {
		if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
			if _, uerr := url.Parse(s); uerr != nil {
				// The parser's message would quote the broken part, which may be the password.
				return p.fail(n, key, "not a valid DSN: not a valid URL (percent-encode special characters in the user and password)")
			}
		}
		secrets = append(secrets, secretsOf(s)...)
		return p.fail(n, key, "not a valid DSN: %s", redactSecrets(innermost(err).Error(), secrets))
	}
	*dst = s
	return nil
}

func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// WriteTopology writes t as a file that parseTopology reads back. It holds
// the DSNs as they are, passwords included, so it is written readable by
// its owner only.
func WriteTopology(path string, t *Topology) error {
	var b strings.Builder
	q := strconv.Quote // a Go quoted ASCII string is a YAML double-quoted scalar
	b.WriteString("# pgshard topology, written by examples/server -write-topology.\n")
	b.WriteString("# It holds passwords: keep it private, or replace them with ${VAR}.\n")
	b.WriteString("shards:\n")
	for _, s := range t.Shards {
		fmt.Fprintf(&b, "  - name: %s\n    range: %s\n    primary: %s\n", q(s.Name), q(s.Range), q(strings.ReplaceAll(s.Primary, "$", "$$")))
		if len(s.Replicas) > 0 {
			b.WriteString("    replicas:\n")
			for _, r := range s.Replicas {
				fmt.Fprintf(&b, "      - %s\n", q(strings.ReplaceAll(r, "$", "$$")))
			}
		}
	}
	o := t.Replica
	b.WriteString("replica:\n")
	for _, d := range []struct {
		k string
		v time.Duration
	}{{"check_interval", o.CheckInterval}, {"check_timeout", o.CheckTimeout}, {"max_lag", o.MaxLag}, {"max_wait", o.MaxWait}, {"connect_timeout", o.ConnectTimeout}} {
		if d.v != 0 {
			fmt.Fprintf(&b, "  %s: %s\n", d.k, d.v)
		}
	}
	for _, n := range []struct {
		k string
		v int64
	}{{"max_lag_bytes", o.MaxLagBytes}, {"eject_after", int64(o.EjectAfter)}, {"admit_after", int64(o.AdmitAfter)}, {"max_conns", int64(t.MaxConns)}} {
		if n.v != 0 {
			fmt.Fprintf(&b, "  %s: %d\n", n.k, n.v)
		}
	}
	fmt.Fprintf(&b, "  fallback: %s\n", o.Fallback)
	if o.MaxFallbackRate != 0 {
		fmt.Fprintf(&b, "  max_fallback_rate: %g\n", o.MaxFallbackRate)
	}
	fmt.Fprintf(&b, "cache:\n  capacity: %d\n  ttl: %s\n  negative_ttl: %s\n", t.Cache.Capacity, t.Cache.TTL, t.Cache.NegativeTTL)
	if t.Channel != "" {
		fmt.Fprintf(&b, "channel: %s\n", q(t.Channel))
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
