"""Peak memory of the runs that serve rows without the model: a warm `build` and an `embed` rerun.

    python benchmarks/bench_rerun.py                        # 2,000 photos, this tree vs main's
    python benchmarks/bench_rerun.py -n 500 --before HEAD~1

On N generated 1600×1200 JPEGs of noisy gradients (so that their 800 px WebP previews are large,
as photos' are), each code tree (`--before REV`, exported with `git archive`, and this checkout)
runs, each in its own process, a cold `build --weights random` that fills its own cache (the
versions may keep it differently), a warm `build` (the cache serves every row), an `embed
--overwrite` from the cache (the store as that version writes it) and the measured `embed` rerun
with `--no-cache` (the store serves every row). Peak memory is the process's maximum resident set
size; the bytes of the thumbnails and previews served are printed for scale. Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(ROOT))

from benchmarks.bench_build import RUN_CLI as RUN  # noqa: E402  # a dinoclust command, timed


def make_photos(folder: Path, n: int) -> None:
    rng = np.random.default_rng(n)
    ramp = np.linspace(0, 1, 1600, dtype=np.float32)[None, :, None]
    for i in range(n):
        colour = rng.integers(40, 216, size=3).astype(np.float32)
        noise = rng.normal(0, 40, size=(1200, 1600, 3)).astype(np.float32)
        pixels = np.clip(colour * (0.5 + ramp) + noise, 0, 255).astype(np.uint8)
        path = folder / f"g{i % 10}" / f"photo_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=85)


def run(code: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(  # run from `code`: `-c` puts the working folder first on sys.path
        [sys.executable, "-c", RUN, *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=code,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def export(rev: str, into: Path) -> Path:
    """The code of `rev` (generator/ and templates/), without touching any checkout."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "generator", "templates"],
        check=True,
        capture_output=True,
    ).stdout
    into.mkdir()
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def served_bytes(store: Path) -> int:
    import pyarrow.parquet as pq

    total = 0
    for part in store.glob("part-*.parquet"):
        table = pq.read_table(part, columns=["thumb", "preview"])
        for name in ("thumb", "preview"):
            total += sum(len(v) for v in table.column(name).to_pylist() if v)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="photos")
    parser.add_argument("--before", help="git revision to compare with [where HEAD left main]")
    parser.add_argument("--work", type=Path, help="keep photos, cache and store here (reused)")
    args = parser.parse_args()
    if args.before is None:
        base = ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"]
        args.before = subprocess.run(base, check=True, capture_output=True, text=True).stdout[:9]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        photos, store = work / "photos", work / "emb"
        model = ["--weights", "random", "-q"]
        if not photos.is_dir():
            make_photos(photos, args.n)
        before = export(args.before, Path(tmp) / "before")
        trees = {f"before ({args.before})": before, "after": ROOT}
        rows = []
        for name, code in trees.items():
            site = Path(tmp) / f"site-{len(rows)}"
            cache = work / f"cache-{len(rows)}"
            cold = {"seconds": float("nan"), "rss_mb": float("nan")}  # reused: not measured
            if not cache.is_dir():
                cold = run(
                    code, "build", str(photos), "-o", str(site), "--cache-dir", str(cache), *model
                )
            warm = run(
                code, "build", str(photos), "-o", str(site), "--cache-dir", str(cache), *model
            )
            made = ["-o", str(store), "--cache-dir", str(cache), "--overwrite", *model]
            run(code, "embed", str(photos), *made)  # the store as this version writes it
            again = run(code, "embed", str(photos), "-o", str(store), "--no-cache", *model)
            rows.append((name, cold, warm, again))
        mb = served_bytes(store) / 2**20
    print(f"{args.n:,} photos, 1600×1200; thumbnails and previews served: {mb:.0f} MB\n")
    print(
        "| code | cold build | peak RSS | warm build | peak RSS | torch imported | embed rerun "
        "| peak RSS |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for name, cold, warm, again in rows:
        print(
            f"| {name} | {cold['seconds']:.1f} s | {cold['rss_mb']:.0f} MB | "
            f"{warm['seconds']:.1f} s | {warm['rss_mb']:.0f} MB | {warm['torch']} | "
            f"{again['seconds']:.1f} s | {again['rss_mb']:.0f} MB |"
        )


if __name__ == "__main__":
    main()
