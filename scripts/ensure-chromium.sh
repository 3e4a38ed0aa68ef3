#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (Playwright cannot download its own here).
set -euo pipefail
binary="${CHROMIUM_PATH:-/usr/lib/chromium/chromium}"
if [ -x "$binary" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Chromium not found at $binary. Install it (sudo apt-get install -y chromium)" >&2
  echo "or set CHROMIUM_PATH to a Chromium/Chrome binary, then run the tests again." >&2
  exit 1
fi
echo "Installing Debian's chromium for the browser tests…" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
test -x "$binary"
