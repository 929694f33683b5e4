package reshard

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// copySchema copies the declared tables' definitions (with their indexes,
// constraints and owned sequences, but none of pgshard's triggers) from
// the source to the target c is connected to, in one transaction, with
// pg_dump and pg_restore.
func (m *Manager) copySchema(ctx context.Context, st *State, c *pgx.Conn) error {
	dump, err := m.pgTool("pg_dump")
	if err != nil {
		return err
	}
	restore := filepath.Join(filepath.Dir(dump), "pg_restore")
	cfg, err := m.config("source "+st.Source.Shard, st.Source.Primary)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pgshard-schema-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "schema.dump")
	args := []string{"--schema-only", "--format=custom", "--file=" + archive}
	for _, t := range st.Tables {
		args = append(args, "--table="+quoteTable(t.Name))
	}
	env := append(os.Environ(), "PGHOST="+cfg.Host, "PGPORT="+strconv.Itoa(int(cfg.Port)),
		"PGUSER="+cfg.User, "PGPASSWORD="+cfg.Password, "PGDATABASE="+cfg.Database, "PGCONNECT_TIMEOUT=10")
	run := func(prog string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, prog, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %s", filepath.Base(prog), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	if _, err := run(dump, args...); err != nil {
		return err
	}
	toc, err := run(restore, "--list", archive)
	if err != nil {
		return err
	}
	var keep []string
	for _, line := range strings.Split(string(toc), "\n") {
		if strings.Contains(line, " TRIGGER ") && strings.Contains(line, " pgshard_") {
			continue // the fence and the workflow's guards belong to the source
		}
		keep = append(keep, line)
	}
	list := filepath.Join(dir, "schema.list")
	if err := os.WriteFile(list, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
		return err
	}
	sql, err := run(restore, "--use-list="+list, "--file=-", archive)
	if err != nil {
		return err
	}
	// psql meta-commands (\restrict, \unrestrict) are for psql alone.
	var body strings.Builder
	for _, line := range strings.SplitAfter(string(sql), "\n") {
		if !strings.HasPrefix(line, "\\") {
			body.WriteString(line)
		}
	}
	var pre strings.Builder
	for _, t := range st.Tables {
		if schema, _, ok := strings.Cut(t.Name, "."); ok {
			pre.WriteString("CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{schema}.Sanitize() + ";\n")
		}
	}
	err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, pre.String()+body.String())
		return err
	})
	if err != nil {
		return err
	}
	// The dump empties search_path for the session.
	_, err = c.Exec(ctx, "RESET ALL")
	return err
}

// pgTool finds a PostgreSQL client program: in Options.PgDump's folder,
// on $PATH, or the newest under /usr/lib/postgresql/*/bin.
func (m *Manager) pgTool(name string) (string, error) {
	if m.o.PgDump != "" {
		return filepath.Join(filepath.Dir(m.o.PgDump), name), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no %s: install the PostgreSQL client programs, or set Options.PgDump", name)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}
