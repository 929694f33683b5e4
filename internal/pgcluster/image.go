package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

// DefaultImage is the server image of the docker backend when neither Options.Image
// nor $PGSHARD_PG_IMAGE names one. It is made on this machine, from Debian's packages,
// with no registry (see EnsureImage).
const DefaultImage = "pgshard/postgres:15"

// EnvImage is the environment variable that names the docker backend's image when
// Options.Image is empty, e.g. postgres:16 where a registry can be reached.
const EnvImage = "PGSHARD_PG_IMAGE"

// imageSuite is the Debian release that EnsureImage installs.
const imageSuite = "bookworm"

// builtImage matches the images EnsureImage can build: pgshard/postgres:<major>.
var builtImage = regexp.MustCompile(`^pgshard/postgres:(1[5-9]|[2-9][0-9])$`)

// Buildable reports whether EnsureImage can build image with no registry.
func Buildable(image string) bool { return builtImage.MatchString(image) }

// EnsureImage makes image present in the Docker engine. An image that is there is left
// as it is. pgshard/postgres:<major> (see Buildable) is built with no registry:
// mmdebstrap installs Debian's postgresql-<major> into a minimal Debian bookworm file
// system from this machine's apt sources, and the engine imports the result; that needs
// root and mmdebstrap (apt-get install -y mmdebstrap) and takes a minute or two, and
// processes of this machine that build at once wait for one another. Any other image
// is pulled. mmdebstrap's output goes to log, which may be nil.
func EnsureImage(ctx context.Context, image string, log io.Writer) error {
	pool, err := pingDocker(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	defer closeIdle(pool)
	return ensureImage(ctx, pool, image, true, log)
}

// ensureImage makes image present: it builds or, when build is true and it cannot be
// built, pulls it. Without build it only says whether it is there.
func ensureImage(ctx context.Context, pool *dockertest.Pool, image string, build bool, log io.Writer) error {
	if ok, err := imagePresent(pool, image); err != nil || ok {
		return err
	}
	if !build {
		return fmt.Errorf("the Docker engine has no image %s", image)
	}
	if !Buildable(image) {
		repo, tag := splitImage(image)
		err := pool.Client.PullImage(dc.PullImageOptions{Repository: repo, Tag: tag, Context: ctx,
			InactivityTimeout: time.Minute}, dc.AuthConfiguration{})
		if err != nil {
			return fmt.Errorf("pgcluster: pull %s: %w (%s=%s builds one with no registry)", image, err, EnvImage, DefaultImage)
		}
		return nil
	}
	unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "pgshard-image.lock"))
	if err != nil {
		return fmt.Errorf("pgcluster: lock the image build: %w", err)
	}
	defer unlock()
	if ok, err := imagePresent(pool, image); err != nil || ok {
		return err // another process built it meanwhile
	}
	major := builtImage.FindStringSubmatch(image)[1]
	if err := buildImage(ctx, pool, image, []string{"postgresql-" + major}, log); err != nil {
		return fmt.Errorf("pgcluster: build the image %s: %w", image, err)
	}
	return nil
}

// EnsureDebianImage makes image present in the Docker engine: unless it is there,
// mmdebstrap installs packages into a minimal Debian bookworm file system from this
// machine's apt sources, and the engine imports it, with no registry. It needs root and
// mmdebstrap; processes of this machine that build at once wait for one another.
// mmdebstrap's output goes to log, which may be nil.
func EnsureDebianImage(ctx context.Context, image string, packages []string, log io.Writer) error {
	pool, err := pingDocker(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	defer closeIdle(pool)
	if ok, err := imagePresent(pool, image); err != nil || ok {
		return err
	}
	unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "pgshard-image.lock"))
	if err != nil {
		return fmt.Errorf("pgcluster: lock the image build: %w", err)
	}
	defer unlock()
	if ok, err := imagePresent(pool, image); err != nil || ok {
		return err
	}
	if err := buildImage(ctx, pool, image, packages, log); err != nil {
		return fmt.Errorf("pgcluster: build the image %s: %w", image, err)
	}
	return nil
}

func imagePresent(pool *dockertest.Pool, image string) (bool, error) {
	_, err := pool.Client.InspectImage(image)
	if errors.Is(err, dc.ErrNoSuchImage) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pgcluster: inspect the image %s: %w", image, err)
	}
	return true, nil
}

// buildImage streams mmdebstrap's tarball into the engine's import.
func buildImage(ctx context.Context, pool *dockertest.Pool, image string, packages []string, log io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("mmdebstrap must run as root here")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return errors.New("mmdebstrap is not installed: apt-get install -y mmdebstrap")
	}
	if log == nil {
		log = io.Discard
	}
	// The packaged cluster and the documentation are of no use in a test server's image.
	noCluster := `mkdir -p "$1/etc/postgresql-common" && echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.conf"`
	cmd := exec.CommandContext(ctx, "mmdebstrap", "--variant=minbase", "--include="+strings.Join(packages, ","),
		"--essential-hook="+noCluster,
		"--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		imageSuite, "-")
	cmd.Stderr = log
	tarball, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	if log == io.Discard {
		cmd.Stderr = &stderr
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	repo, tag := splitImage(image)
	importErr := pool.Client.ImportImage(dc.ImportImageOptions{Repository: repo, Tag: tag, Source: "-",
		InputStream: tarball, OutputStream: io.Discard, Context: ctx})
	_, _ = io.Copy(io.Discard, tarball) // so that mmdebstrap ends if the import stopped early
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("mmdebstrap: %w\n%s", err, lastLines(stderr.String(), 20))
	}
	return importErr
}

func splitImage(image string) (repo, tag string) {
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i], image[i+1:]
	}
	return image, "latest"
}
