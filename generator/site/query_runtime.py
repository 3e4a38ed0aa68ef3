"""The query control's runtime in the site: onnxruntime-web's WASM build, vendored in the package
(generator/vendor/onnxruntime-web/, refreshed by scripts/update-ort-web.sh), written to query/ as
the page loads it from file://, where neither fetch() nor a module import of a local file works:

- query/ort.wasm.min.js   the runtime itself, a classic script (copied verbatim);
- query/ort-wasm.js       window.DINOCLUST_ORT_WASM, the .wasm's bytes as base64;
- query/ort-glue.js       window.DINOCLUST_ORT_GLUE, the text of the glue module.

The model (query/model.js) and the index (query/index.js) are written beside them by the build.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "vendor" / "onnxruntime-web"
QUERY_DIR = "query"
RUNTIME_JS = "ort.wasm.min.js"
WASM = "ort-wasm-simd-threaded.wasm"
GLUE = "ort-wasm-simd-threaded.mjs"
WASM_JS = "ort-wasm.js"
GLUE_JS = "ort-glue.js"
SITE_FILES = (RUNTIME_JS, WASM_JS, GLUE_JS)  # what write_runtime adds under query/


def runtime_version() -> str:
    """The vendored onnxruntime-web's version (its VERSION file)."""
    return (VENDOR / "VERSION").read_text(encoding="ascii").strip()


def write_runtime(site: Path) -> list[Path]:
    """Write the three runtime files under site/query/; return their paths."""
    from generator.site.render import environment

    env = environment("en")
    version = runtime_version()
    out = site / QUERY_DIR
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(VENDOR / RUNTIME_JS, out / RUNTIME_JS)
    wasm = base64.b64encode((VENDOR / WASM).read_bytes()).decode("ascii")
    glue = (VENDOR / GLUE).read_text(encoding="utf-8")
    texts = {
        WASM_JS: env.get_template(WASM_JS).render(version=version, data=wasm),
        GLUE_JS: env.get_template(GLUE_JS).render(version=version, text=glue),
    }
    for name, text in texts.items():
        (out / name).write_text(text, encoding="utf-8", newline="\n")
    return [out / name for name in SITE_FILES]
