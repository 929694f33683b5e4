package pgcluster

import (
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// setting is one server setting; a list of them keeps postgresql.conf's last-wins order.
type setting struct{ name, value string }

// clusterSettings returns what every node of a test cluster needs, then the caller's Settings.
// The local backend adds the node's own port, address and sockets in front of them.
func clusterSettings(o Options) []setting {
	s := []setting{
		{"wal_level", "replica"},
		{"hot_standby", "on"},
		{"max_wal_senders", "10"},
		{"max_replication_slots", "10"},
		{"wal_keep_size", "64MB"},
		{"max_wal_size", "256MB"}, // data may be in memory (see runParent)
		{"wal_receiver_status_interval", "1s"},
		// A replica whose upstream restarted retries after this, not after 5 s.
		{"wal_retrieve_retry_interval", "100ms"},
		{"max_connections", "100"},
		{"shared_buffers", "16MB"},
		{"logging_collector", "off"},
		{"log_destination", "stderr"},
	}
	// synchronous_commit stays on even without fsync: a commit then costs one write(2),
	// and pg_current_wal_lsn() read after a commit covers that commit, which is what
	// read-your-writes tests and WaitCaughtUp rely on. Turned off, replicas would also
	// trail by up to wal_writer_delay.
	if !o.Fsync {
		s = append(s, setting{"fsync", "off"}, setting{"full_page_writes", "off"})
	}
	for _, k := range slices.Sorted(maps.Keys(o.Settings)) {
		s = append(s, setting{k, o.Settings[k]})
	}
	return s
}

// renderConf writes settings in postgresql.conf syntax.
func renderConf(settings []setting) []byte {
	var b strings.Builder
	b.WriteString("# Written by pgcluster. ALTER SYSTEM (postgresql.auto.conf) overrides it.\n")
	for _, s := range settings {
		b.WriteString(s.name + " = " + quoteConf(s.value) + "\n")
	}
	return []byte(b.String())
}

// quoteConf quotes a value for postgresql.conf, whose parser reads backslash escapes.
func quoteConf(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// quoteLiteral quotes a SQL string literal (standard_conforming_strings is on).
func quoteLiteral(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

func quoteIdent(v string) string { return pgx.Identifier{v}.Sanitize() }

// hbaConf lets every user in over TCP from loopback with a password, and over the local
// socket without one; replication connections alike.
const hbaConf = `# Written by pgcluster.
local all         all                trust
local replication all                trust
host  all         all  127.0.0.1/32  scram-sha-256
host  replication all  127.0.0.1/32  scram-sha-256
`

// superuser is the bootstrap superuser of every node; it shares Options.Password.
const superuser = "postgres"

// roleSQL creates the caller's login role, unless it is the superuser itself.
func roleSQL(o Options) []string {
	if o.User == superuser {
		return nil
	}
	u := quoteIdent(o.User)
	return []string{
		"CREATE ROLE " + u + " LOGIN PASSWORD " + quoteLiteral(o.Password),
		// pg_monitor lets the role read replication state, as a health checker would.
		"GRANT pg_monitor TO " + u,
		// The default search path starts with "$user": a role named like
		// the topology's schema (the default role is pgshard) would create
		// its tables in that schema, which no fence guards, once a fence
		// had made it, and an unqualified name would find them there.
		"ALTER ROLE " + u + " SET search_path = public",
	}
}
