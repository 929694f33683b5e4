#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (15 or newer) are on this machine.
# As root on Debian or Ubuntu it installs them with apt-get; otherwise it
# prints the command to run. It never starts a server: the test harness
# (internal/pgcluster) starts and stops its own.
set -euo pipefail

have_pg() {
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && [ -x "$d/pg_basebackup" ] && return 0
	done
	command -v initdb >/dev/null 2>&1 && command -v pg_basebackup >/dev/null 2>&1
}

if have_pg; then
	exit 0
fi

if [ "${PGSHARD_PG_BACKEND:-auto}" = docker ]; then
	exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "PostgreSQL server binaries not found. Install them with:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y postgresql" >&2
	echo "or run a Docker engine and set PGSHARD_PG_BACKEND=docker." >&2
	exit 1
fi

echo "installing the PostgreSQL server binaries (apt-get install postgresql)..." >&2
# Install the binaries without the packaged cluster or a running service.
mkdir -p /etc/postgresql-common
echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
have_pg || { echo "apt-get install postgresql did not provide initdb and pg_basebackup" >&2; exit 1; }
