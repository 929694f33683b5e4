#!/usr/bin/env bash
# make test-docker: every package's tests, the short chaos suite included, against
# dockerised PostgreSQL (PGSHARD_PG_BACKEND=docker), one container per node with host
# networking. It runs under scripts/with-docker.sh, which provides the engine; it builds
# the image (pgshard/postgres:15, or $PGSHARD_PG_IMAGE) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
PKGS=${PKGS:-./...}
TEST_TIMEOUT=${TEST_TIMEOUT:-15m}
IMAGE=${PGSHARD_PG_IMAGE:-pgshard/postgres:15}

"$GO" run ./internal/pgcluster/pgimage -image "$IMAGE"
export PGSHARD_PG_BACKEND=docker PGSHARD_PG_IMAGE="$IMAGE"
# One package at a time: each starts its clusters of containers, and two at once on a
# small machine slow each other down into timeouts.
"$GO" test -race -count=1 -p "${TEST_DOCKER_P:-1}" -timeout "$TEST_TIMEOUT" $PKGS
