#!/usr/bin/env bash
# with-docker.sh CMD...: runs CMD with a Docker engine that answers. As root it installs
# docker.io and mmdebstrap (which builds images with no registry) when they are missing,
# and starts an engine of its own when none answers, on a private socket that CMD finds
# in DOCKER_HOST, and stops it when CMD ends. It exits with CMD's status.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
	echo "with-docker: $*" >&2
	exit 1
}

engine_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install() {
	[ "$(id -u)" = 0 ] || die "$* missing: run as root, or install them (apt-get install -y $*)"
	command -v apt-get >/dev/null 2>&1 || die "$* missing and no apt-get to install them"
	echo "with-docker: installing $*" >&2
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

missing=()
command -v docker >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
# mmdebstrap only builds missing images: worth installing where it can be.
command -v mmdebstrap >/dev/null 2>&1 || [ "$(id -u)" != 0 ] || missing+=(mmdebstrap)
[ ${#missing[@]} -eq 0 ] || install "${missing[@]}"

engine_pid=
engine_dir=
stop_engine() {
	[ -n "$engine_pid" ] || return 0
	echo "with-docker: stopping the Docker engine it started (pid $engine_pid)" >&2
	kill -TERM "$engine_pid" 2>/dev/null || true
	for _ in $(seq 60); do
		kill -0 "$engine_pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -KILL "$engine_pid" 2>/dev/null || true
	wait "$engine_pid" 2>/dev/null || true
	# dockerd leaves its network namespace mounted under its exec root.
	for m in $(awk -v d="$engine_dir" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$engine_dir" 2>/dev/null || echo "with-docker: could not remove $engine_dir" >&2
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
	echo "with-docker: started a Docker engine (pid $engine_pid) at $DOCKER_HOST" >&2
fi

# With cgroup v1, all containers share one group, docker, that the kernel weighs as one
# process against every process outside it: on a busy machine PostgreSQL in containers
# then gets a sliver of what the same servers get as local processes, and checks time
# out. The group is weighed as 8 processes instead, while CMD runs.
shares=/sys/fs/cgroup/cpu/docker/cpu.shares
old_shares=
if [ "$(id -u)" = 0 ] && [ -d /sys/fs/cgroup/cpu ] && { [ -d "${shares%/*}" ] || mkdir "${shares%/*}" 2>/dev/null; } &&
	old_shares=$(cat "$shares" 2>/dev/null) && echo 8192 >"$shares" 2>/dev/null; then
	:
else
	old_shares=
fi

status=0
"$@" || status=$?
[ -z "$old_shares" ] || echo "$old_shares" >"$shares" 2>/dev/null || true
exit "$status"
