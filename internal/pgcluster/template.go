package pgcluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// templateFormat changes whenever makeTemplate changes what it makes, so that templates
// cached by an older pgcluster are not used.
const templateFormat = "2"

// confFile is the file, included by postgresql.conf, that holds a node's settings.
const confFile = "pgshard.conf"

// ensureTemplate returns a data folder made by initdb, with the caller's role and database,
// that nodes are copied from: initdb takes seconds, a copy a few milliseconds. It is
// cached under os.TempDir() per server version, owner, role and database, and shared by
// every test process: a lock file serialises its making and a rename publishes it whole.
func (b *localBackend) ensureTemplate(ctx context.Context) (string, error) {
	o := b.opts
	key := sha256.Sum256([]byte(strings.Join([]string{templateFormat, b.bin.dir, b.bin.version,
		fmt.Sprint(b.owner.id()), o.User, o.Password, o.Database}, "\x00")))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pgshard-template-%s-%x", b.bin.version, key[:8]))
	ready := func() bool {
		_, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
		return err == nil
	}
	if ready() {
		return dir, nil
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", fmt.Errorf("pgcluster: lock the template: %w", err)
	}
	defer unlock()
	if ready() {
		return dir, nil
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp) // left by a process that died while making it
	if err := b.makeTemplate(ctx, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("pgcluster: make the template data folder: %w", err)
	}
	return dir, os.Rename(tmp, dir)
}

func (b *localBackend) makeTemplate(ctx context.Context, dir string) error {
	o := b.opts
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := b.owner.chown(dir); err != nil {
		return err
	}
	pwfile := dir + ".pw"
	if err := b.writeOwned(pwfile, []byte(o.Password+"\n")); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	_, err := b.run(b.tool(ctx, "initdb", "-D", dir, "-U", superuser, "--pwfile", pwfile, "--auth", "trust",
		"--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions"))
	if err != nil {
		return err
	}
	if err := b.writeOwned(filepath.Join(dir, "pg_hba.conf"), []byte(hbaConf)); err != nil {
		return err
	}
	conf, err := os.OpenFile(filepath.Join(dir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(conf, "\ninclude_if_exists = '%s'\n", confFile)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	stmts := roleSQL(o)
	if o.Database != "postgres" {
		stmts = append(stmts, "CREATE DATABASE "+quoteIdent(o.Database)+" OWNER "+quoteIdent(o.User))
	}
	if len(stmts) == 0 {
		return nil
	}
	// Single-user mode runs SQL without a port, a socket or a password.
	cmd := b.tool(ctx, "postgres", "--single", "-j", "-F", "-D", dir, "postgres")
	cmd.Stdin = strings.NewReader(strings.Join(stmts, ";\n\n") + ";\n\n")
	out, err := b.run(cmd)
	if err == nil && bytes.Contains(out, []byte("ERROR:")) {
		err = fmt.Errorf("postgres --single: SQL failed\n%s", lastLines(string(out), 20))
	}
	if err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), quoteLiteral(o.Password), "'xxxxx'"))
	}
	return nil
}

// lockFile takes an exclusive flock on path, waiting for it as long as ctx allows.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	// Read-only is enough for flock, and lets another user share a lock file root made.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			_ = f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// copyTree copies the folder src to dst, which must not exist, keeping permissions and
// giving everything to own.
func copyTree(src, dst string, own *owner) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			err = os.Mkdir(target, info.Mode().Perm())
		case d.Type().IsRegular():
			err = copyFile(path, target, info.Mode().Perm())
		default:
			err = fmt.Errorf("copy %s: not a regular file or folder", path)
		}
		if err != nil {
			return err
		}
		return own.chown(target)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
