#!/usr/bin/env bash
# Makes sure curl and jq are installed: the README's quick start uses them,
# and TestReadmeQuickStartRuns pastes it into bash. As root with apt-get it
# installs what is missing; otherwise it prints how, and exits 0: the test
# then skips with a message saying so.
set -euo pipefail

missing=()
for tool in curl jq; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "${missing[*]} not found: the README quick start test will be skipped. Install with:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
	exit 0
fi
echo "installing ${missing[*]} for the README quick start (apt-get install)..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
	echo "could not install ${missing[*]}: the README quick start test will be skipped" >&2
fi
