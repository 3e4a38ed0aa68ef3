#!/usr/bin/env bash
# Tests and benchmarks on real images use Debian's clip art (openclipart-png): installed here, once,
# so that the tests needing it run in CI instead of skipping.
set -euo pipefail
folder=/usr/share/openclipart/png
if [ -d "$folder" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "Debian's clip art is not at $folder: install it (sudo apt-get install -y openclipart-png)" >&2
  echo "for the tests on real images; they skip without it." >&2
  exit 0
fi
echo "Installing Debian's openclipart-png for the tests on real images…" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openclipart-png >/dev/null
test -d "$folder"
