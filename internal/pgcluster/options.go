package pgcluster

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"strings"
)

// Backend names the kind of PostgreSQL servers a Cluster runs; a string, safe for concurrent use.
type Backend string

const (
	// BackendAuto uses docker when a Docker engine answers within a second and has the
	// image, else local: it never builds nor pulls an image.
	BackendAuto Backend = "auto"
	// BackendLocal runs the PostgreSQL server binaries installed on this machine.
	BackendLocal Backend = "local"
	// BackendDocker runs one container of the image per node, and builds the image
	// (see EnsureImage) or pulls it when it is missing.
	BackendDocker Backend = "docker"
)

// EnvBackend is the environment variable that chooses the backend when Options.Backend is empty.
const EnvBackend = "PGSHARD_PG_BACKEND"

// ParseBackend reads a backend name, ignoring case and surrounding spaces. The empty string
// means BackendAuto. Any other unknown name fails with ErrUnknownBackend.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(strings.ToLower(strings.TrimSpace(s))); b {
	case "":
		return BackendAuto, nil
	case BackendAuto, BackendLocal, BackendDocker:
		return b, nil
	default:
		return "", fmt.Errorf("%w %q: want auto, local or docker", ErrUnknownBackend, s)
	}
}

// Options configures Start: a plain value, safe for concurrent use as long as no one
// changes its Settings map. Start keeps a copy. The zero value starts one primary.
type Options struct {
	// Shards is the number of shards, each with its own primary. Zero means 1.
	Shards int
	// Replicas is the number of streaming replicas per shard. Zero means none.
	Replicas int

	// Database is created on every primary and owned by User. Zero means "pgshard".
	Database string
	// User is a login role (not a superuser) that connects over TCP with Password.
	// Zero means "pgshard".
	User string
	// Password is User's password, and the superuser postgres's too. Zero means "pgshard".
	Password string

	// Backend chooses the servers' kind. Zero means the value of $PGSHARD_PG_BACKEND,
	// and auto when that is unset or empty.
	Backend Backend

	// Fsync keeps fsync and full_page_writes on, for data that must survive a machine
	// crash (a dev server). False, the default, turns them off: tests run faster.
	Fsync bool

	// TLS makes every server accept TLS connections (ssl = on), with a certificate for
	// 127.0.0.1 and localhost signed by a certificate authority made for this cluster
	// alone; Cluster.CAFile names its PEM file, for sslmode=verify-full. Plain
	// connections still work. Local backend only.
	TLS bool

	// Settings are extra server settings (postgresql.conf names), applied to every node
	// after pgcluster's own, so they win. Zero means none.
	Settings map[string]string

	// DataDir, for the local backend, is the folder that holds the nodes' data folders and
	// logs; it must be absent, empty, or the DataDir of an earlier Start, whose nodes then
	// start again from their data (on new ports; the options must describe the same
	// shards and replicas, and extra ones are made). It must be reachable by the user
	// postgres when this process runs as root, and Close leaves it in place. Zero means a new folder that Close
	// removes, in /dev/shm when that is a tmpfs with room, else in os.TempDir().
	DataDir string
	// BinDir, for the local backend, is the folder of initdb, postgres and pg_basebackup.
	// Zero means search $PATH, then /usr/lib/postgresql/*/bin and /usr/pgsql-*/bin, and
	// take the highest version that is 15 or newer.
	BinDir string
	// Image, for the docker backend, is the server image: any image with the PostgreSQL
	// server binaries on PATH or under /usr/lib/postgresql/*/bin and a user postgres,
	// such as the official postgres:15. Zero means $PGSHARD_PG_IMAGE, and DefaultImage
	// when that is unset or empty.
	Image string
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// withDefaults fills in zero fields and checks the others; it names the field that is wrong.
func (o Options) withDefaults() (Options, error) {
	if o.Shards < 0 || o.Shards > 64 {
		return o, fmt.Errorf("pgcluster: Options.Shards = %d: want 0 to 64", o.Shards)
	}
	if o.Replicas < 0 || o.Replicas > 8 {
		return o, fmt.Errorf("pgcluster: Options.Replicas = %d: want 0 to 8", o.Replicas)
	}
	if o.Shards == 0 {
		o.Shards = 1
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"Database", &o.Database}, {"User", &o.User}, {"Password", &o.Password}} {
		if *f.v == "" {
			*f.v = "pgshard"
		}
		if len(*f.v) > 63 || strings.ContainsAny(*f.v, "\x00\r\n") {
			return o, fmt.Errorf("pgcluster: Options.%s: want at most 63 bytes and no NUL or newline", f.name)
		}
	}
	for k, v := range o.Settings {
		if !settingName.MatchString(k) || strings.ContainsAny(v, "\x00\r\n") {
			return o, fmt.Errorf("pgcluster: Options.Settings[%q]: bad setting name or value", k)
		}
	}
	o.Settings = maps.Clone(o.Settings)
	if o.Image == "" {
		o.Image = strings.TrimSpace(os.Getenv(EnvImage))
	}
	if o.Image == "" {
		o.Image = DefaultImage
	}
	return o, nil
}
