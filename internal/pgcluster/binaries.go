package pgcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// minMajor is the oldest PostgreSQL major version that pgshard supports.
const minMajor = 15

// binaries is one installation of the PostgreSQL server programs.
type binaries struct {
	dir     string // folder of initdb, postgres, pg_basebackup and pg_resetwal
	version string // e.g. "15.18", from postgres --version
	major   int
}

func (b binaries) path(program string) string { return filepath.Join(b.dir, program) }

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(\.\d+)?`)

// findBinaries returns the installation in dir, or when dir is empty the newest one on
// $PATH or in the usual Linux package folders whose version is at least minMajor.
func findBinaries(ctx context.Context, dir string) (binaries, error) {
	candidates := []string{dir}
	if dir == "" {
		candidates = nil
		if p, err := exec.LookPath("postgres"); err == nil {
			candidates = append(candidates, filepath.Dir(p))
		}
		for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"} {
			m, _ := filepath.Glob(pattern)
			candidates = append(candidates, m...)
		}
	}
	var best binaries
	var why []string
	for _, d := range candidates {
		b, err := probeBinaries(ctx, d)
		switch {
		case err != nil:
			why = append(why, err.Error())
		case b.major < minMajor:
			why = append(why, fmt.Sprintf("%s: PostgreSQL %s is older than %d", d, b.version, minMajor))
		case b.major > best.major:
			best = b
		}
	}
	if best.dir != "" {
		return best, nil
	}
	if dir != "" {
		return best, fmt.Errorf("pgcluster: Options.BinDir: %v", why)
	}
	if len(why) > 0 {
		return best, fmt.Errorf("%w (%v)", ErrNoPostgres, why)
	}
	return best, ErrNoPostgres
}

func probeBinaries(ctx context.Context, dir string) (binaries, error) {
	b := binaries{dir: dir}
	for _, p := range []string{"postgres", "initdb", "pg_basebackup", "pg_resetwal"} {
		if fi, err := os.Stat(b.path(p)); err != nil || fi.Mode()&0o111 == 0 {
			return b, fmt.Errorf("%s: no executable %s", dir, p)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.path("postgres"), "--version").Output()
	m := versionRE.FindSubmatch(out)
	if err != nil || m == nil {
		return b, fmt.Errorf("%s: postgres --version: %q %v", dir, out, err)
	}
	b.major, _ = strconv.Atoi(string(m[1]))
	b.version = string(m[1]) + string(m[2])
	return b, nil
}
