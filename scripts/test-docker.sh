#!/usr/bin/env bash
# make test-docker: every package's tests, the short chaos suite included, against
# dockerised PostgreSQL (PGSHARD_PG_BACKEND=docker), one container per node with host
# networking. As root it installs docker.io (and mmdebstrap, to build the image) when
# they are missing, starts a Docker engine when none answers and stops it afterwards,
# and builds the image (pgshard/postgres:15, or $PGSHARD_PG_IMAGE) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
PKGS=${PKGS:-./...}
TEST_TIMEOUT=${TEST_TIMEOUT:-15m}
IMAGE=${PGSHARD_PG_IMAGE:-pgshard/postgres:15}

die() {
	echo "test-docker: $*" >&2
	exit 1
}

engine_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

image_present() { timeout 30 docker image inspect "$IMAGE" >/dev/null 2>&1; }

install() {
	[ "$(id -u)" = 0 ] || die "$* missing: run as root, or install them (apt-get install -y $*)"
	command -v apt-get >/dev/null 2>&1 || die "$* missing and no apt-get to install them"
	echo "test-docker: installing $*" >&2
	# Install without starting services: this script starts the engine it needs.
	local made_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	local ok=1
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null; } || ok=
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
	[ -n "$ok" ] || die "apt-get install $* failed"
}

command -v docker >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1 || install docker.io

engine_pid=
engine_dir=
stop_engine() {
	[ -n "$engine_pid" ] || return 0
	echo "test-docker: stopping the Docker engine it started (pid $engine_pid)" >&2
	kill -TERM "$engine_pid" 2>/dev/null || true
	for _ in $(seq 60); do
		kill -0 "$engine_pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -KILL "$engine_pid" 2>/dev/null || true
	wait "$engine_pid" 2>/dev/null || true
	rm -rf "$engine_dir"
}

if ! engine_answers; then
	[ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer"
	[ "$(id -u)" = 0 ] || die "no Docker engine answers, and only root can start one here"
	# An engine of its own, on a socket of its own, that touches no firewall rule and
	# makes no bridge: the containers use the host's network.
	engine_dir=$(mktemp -d /tmp/pgshard-dockerd.XXXXXX)
	export DOCKER_HOST="unix://$engine_dir/docker.sock"
	dockerd --host "$DOCKER_HOST" --exec-root "$engine_dir/exec" --pidfile "$engine_dir/dockerd.pid" \
		--iptables=false --ip6tables=false --bridge=none >"$engine_dir/dockerd.log" 2>&1 &
	engine_pid=$!
	trap stop_engine EXIT
	for _ in $(seq 120); do
		engine_answers && break
		kill -0 "$engine_pid" 2>/dev/null || break
		sleep 0.5
	done
	if ! engine_answers; then
		tail -20 "$engine_dir/dockerd.log" >&2
		die "the Docker engine it started (dockerd, pid $engine_pid) does not answer; its log is above"
	fi
	echo "test-docker: started a Docker engine (pid $engine_pid) at $DOCKER_HOST" >&2
fi

if ! image_present && [[ "$IMAGE" == pgshard/postgres:* ]]; then
	command -v mmdebstrap >/dev/null 2>&1 || install mmdebstrap
fi
"$GO" run ./internal/pgcluster/pgimage -image "$IMAGE"

export PGSHARD_PG_BACKEND=docker PGSHARD_PG_IMAGE="$IMAGE"
"$GO" test -race -count=1 -timeout "$TEST_TIMEOUT" $PKGS
