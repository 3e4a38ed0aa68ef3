#!/usr/bin/env bash
# Refresh the vendored onnxruntime-web runtime (generator/vendor/onnxruntime-web/) from npm at a
# given version: `scripts/update-ort-web.sh 1.30.0`. Only the files the query control needs are
# kept: the classic-script WASM build, its .wasm and the glue module that loads it, with the
# licence (MIT, Microsoft; the npm package carries none, so it comes from the onnxruntime wheel
# when one is installed, else the copy already here stays) and a VERSION file.
set -euo pipefail
version="${1:?usage: scripts/update-ort-web.sh VERSION (for example 1.30.0)}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/generator/vendor/onnxruntime-web"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "onnxruntime-web@$version" >/dev/null)
tar -xzf "$work/onnxruntime-web-$version.tgz" -C "$work"
mkdir -p "$dest"
for name in ort.wasm.min.js ort-wasm-simd-threaded.wasm ort-wasm-simd-threaded.mjs; do
  test -f "$work/package/dist/$name" || { echo "Error: $name is not in onnxruntime-web $version's dist/." >&2; exit 1; }
  cp "$work/package/dist/$name" "$dest/$name"
done
licence="$(python3 -c 'import onnxruntime, pathlib; print(pathlib.Path(onnxruntime.__file__).parent / "LICENSE")' 2>/dev/null || true)"
if [ -n "$licence" ] && [ -f "$licence" ]; then cp "$licence" "$dest/LICENSE"; fi
test -f "$dest/LICENSE" || { echo "Error: no LICENSE for onnxruntime-web in $dest: add its MIT licence text." >&2; exit 1; }
echo "$version" > "$dest/VERSION"
echo "onnxruntime-web $version vendored in $dest" >&2
