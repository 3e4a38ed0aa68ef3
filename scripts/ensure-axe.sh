#!/usr/bin/env bash
# The accessibility test injects axe-core (from npm) into the page; it is installed here, once.
set -euo pipefail
version="${AXE_VERSION:-4.14.1}"
dir="$(cd "$(dirname "$0")/.." && pwd)/.axe"
target="$dir/node_modules/axe-core/axe.min.js"
if [ -f "$target" ] && grep -q "axe v$version" "$target"; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm not found: install Node.js (apt-get install -y npm), or set AXE_PATH to an" >&2
  echo "axe.min.js of axe-core $version, then run the tests again." >&2
  exit 1
fi
echo "Installing axe-core $version for the accessibility test…" >&2
mkdir -p "$dir"
npm install --silent --no-audit --no-fund --prefix "$dir" "axe-core@$version" >/dev/null
test -f "$target"
