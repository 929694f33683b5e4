package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// localBackend runs the PostgreSQL server binaries of this machine, one postmaster per
// node, each a child of this process. It is safe for concurrent use.
type localBackend struct {
	opts     Options
	ports    *portPicker
	bin      binaries
	owner    *owner
	base     string // holds every node's data folder and log, and the socket folder
	keep     bool   // base is the caller's DataDir: close leaves it
	reuse    bool   // base holds the nodes of an earlier run: start them from their data
	template string
	spawner  *spawner
	tls      tlsFiles // set when Options.TLS
}

func newLocal(ctx context.Context, o Options, ports *portPicker) (*localBackend, error) {
	bin, err := findBinaries(ctx, o.BinDir)
	if err != nil {
		return nil, err
	}
	own, err := serverOwner()
	if err != nil {
		return nil, err
	}
	b := &localBackend{opts: o, ports: ports, bin: bin, owner: own, spawner: newSpawner()}
	if err := b.makeBase(); err != nil {
		_ = b.close(ctx)
		return nil, err
	}
	if o.TLS {
		if b.tls, err = makeTLS(filepath.Join(b.base, "tls"), own); err != nil {
			_ = b.close(ctx)
			return nil, fmt.Errorf("pgcluster: make TLS certificates: %w", err)
		}
	}
	if b.template, err = b.ensureTemplate(ctx); err != nil {
		_ = b.close(ctx)
		return nil, err
	}
	return b, nil
}

func (b *localBackend) describe() string { return "local PostgreSQL " + b.bin.version }

func (b *localBackend) caFile() string { return b.tls.ca }

func (b *localBackend) makeBase() error {
	if dir := b.opts.DataDir; dir != "" {
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			if !isDataFolder(filepath.Join(dir, "shard0-primary")) {
				return fmt.Errorf("pgcluster: Options.DataDir %s is neither empty nor the data of an earlier cluster", dir)
			}
			b.reuse = true
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return err
		}
		b.base, b.keep = abs, true
	} else {
		parent := runParent()
		sweepStale(parent)
		dir, err := os.MkdirTemp(parent, fmt.Sprintf("pgshard-run-%d-", os.Getpid()))
		if err != nil {
			return err
		}
		b.base = dir
	}
	if err := b.owner.chown(b.base); err != nil {
		return err
	}
	if err := os.Mkdir(b.sockets(), 0o700); err != nil && !(b.reuse && errors.Is(err, os.ErrExist)) {
		return err
	}
	return b.owner.chown(b.sockets())
}

// isDataFolder reports whether dir holds a PostgreSQL data folder.
func isDataFolder(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	return err == nil
}

// portSetting finds the port in a replica's primary_conninfo.
var portSetting = regexp.MustCompile(`(primary_conninfo\s*=\s*'[^\n]*\bport=)\d+`)

// repoint makes a kept replica stream from its primary's new port: pg_basebackup -R
// wrote the old one into postgresql.auto.conf.
func (b *localBackend) repoint(dir string, primaryPort int) error {
	path := filepath.Join(dir, "postgresql.auto.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !portSetting.Match(conf) {
		return fmt.Errorf("no primary_conninfo port in %s", path)
	}
	conf = portSetting.ReplaceAll(conf, []byte("${1}"+strconv.Itoa(primaryPort)))
	return b.writeOwned(path, conf)
}

func (b *localBackend) sockets() string { return filepath.Join(b.base, "sock") }

func (b *localBackend) startPrimary(ctx context.Context, name string) (server, error) {
	dir := filepath.Join(b.base, name)
	if b.reuse && isDataFolder(dir) {
		return b.launch(ctx, name, dir)
	}
	if err := copyTree(b.template, dir, b.owner); err != nil {
		return nil, &NodeError{Node: name, Op: "copy the template for", Err: err}
	}
	if err := b.giveSystemIdentifier(ctx, dir); err != nil {
		return nil, &NodeError{Node: name, Op: "give a system identifier to", Err: err}
	}
	return b.launch(ctx, name, dir)
}

func (b *localBackend) startReplica(ctx context.Context, name, slot string, primary server) (server, error) {
	dir := filepath.Join(b.base, name)
	if b.reuse && isDataFolder(dir) {
		if err := b.repoint(dir, primary.port()); err != nil {
			return nil, &NodeError{Node: name, Op: "repoint", Err: err}
		}
		return b.launch(ctx, name, dir)
	}
	// -R writes primary_conninfo and standby.signal; -C -S makes a slot, so that the
	// primary keeps the WAL that a stopped or paused replica has not received yet.
	cmd := b.tool(ctx, "pg_basebackup", "-D", dir, "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port()),
		"-U", superuser, "-R", "-X", "stream", "-c", "fast", "-C", "-S", slot, "--no-sync")
	cmd.Env = append(cmd.Env, "PGPASSWORD="+b.opts.Password)
	if _, err := b.run(cmd); err != nil {
		return nil, &NodeError{Node: name, Op: "clone", Err: err}
	}
	return b.launch(ctx, name, dir)
}

// launch starts a node from its data folder on a new port, and tries again on another
// port if someone else took that one meanwhile.
func (b *localBackend) launch(ctx context.Context, name, dir string) (server, error) {
	s := &localServer{b: b, name: name, dir: dir, log: dir + ".log"}
	for try := 1; ; try++ {
		port, err := b.ports.pick()
		if err != nil {
			return nil, err
		}
		s.portN = port // s is not shared yet
		if err := b.writeConf(dir, name, port); err != nil {
			return nil, &NodeError{Node: name, Op: "configure", Err: err}
		}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		tail := s.logTail(ctx, 20)
		if try < 3 && strings.Contains(tail, "Address already in use") {
			continue
		}
		return nil, &NodeError{Node: name, Op: "start", Log: tail, Err: err}
	}
}

func (b *localBackend) writeConf(dir, name string, port int) error {
	sock := b.sockets()
	if len(sock)+len("/.s.PGSQL.65535") > 107 { // the limit of a socket's path
		sock = ""
	}
	settings := append([]setting{
		{"listen_addresses", "127.0.0.1"},
		{"port", strconv.Itoa(port)},
		{"unix_socket_directories", sock},
		{"cluster_name", name},
	}, clusterSettings(b.opts)...)
	if b.tls.cert != "" {
		settings = append(settings, setting{"ssl", "on"}, setting{"ssl_cert_file", b.tls.cert}, setting{"ssl_key_file", b.tls.key})
	}
	return b.writeOwned(filepath.Join(dir, confFile), renderConf(settings))
}

func (b *localBackend) writeOwned(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return b.owner.chown(path)
}

// close runs after every server has stopped.
func (b *localBackend) close(context.Context) error {
	b.spawner.close()
	if b.keep || b.base == "" {
		return nil
	}
	return os.RemoveAll(b.base)
}

// owner is the system user that runs the servers when this process is root, which
// PostgreSQL refuses to run as. A nil *owner means this process's own user.
type owner struct{ uid, gid int }

func serverOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: as root, a system user postgres must run the servers "+
			"(the postgresql package creates it): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgcluster: user postgres: %w", err)
	}
	return &owner{uid: uid, gid: gid}, nil
}

func (o *owner) chown(path string) error {
	if o == nil {
		return nil
	}
	return os.Lchown(path, o.uid, o.gid)
}

func (o *owner) credential() *syscall.Credential {
	if o == nil {
		return nil
	}
	return &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.gid)}
}

func (o *owner) id() int {
	if o == nil {
		return os.Getuid()
	}
	return o.uid
}

// sweepStale removes the run folders of processes that died without closing their
// cluster (a test binary killed by its timeout, say). Their servers died with them.
func sweepStale(tmp string) {
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "pgshard-run-")
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		dir := filepath.Join(tmp, e.Name())
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		if pms := livePostmasters(dir); len(pms) > 0 {
			for _, pm := range pms {
				thawStale(pm) // so that it acts on its parent-death signal, and exits
			}
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// livePostmasters returns the postmasters that still run from the data folders in dir.
func livePostmasters(dir string) []int {
	var pids []int
	files, _ := filepath.Glob(filepath.Join(dir, "*", "postmaster.pid"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		first, _, _ := strings.Cut(string(b), "\n")
		if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
