#!/usr/bin/env bash
# Makes sure Debian's headless-capable chromium is at /usr/bin/chromium, for
# the dashboard test of examples/server (TestDashboardInChromium). As root
# with apt-get it installs the package; otherwise it prints how, and exits 0:
# the test then skips with a message saying so. It never starts a browser.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "chromium not found: the dashboard browser test will be skipped. Install it with:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y chromium" >&2
	exit 0
fi
echo "installing chromium for the dashboard test (apt-get install chromium)..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
	echo "could not install chromium: the dashboard browser test will be skipped" >&2
	exit 0
fi
