"""Make generator/model/check_images/: the fixed set that calibrates and checks `--precision int8`.

    python scripts/make_check_images.py        # needs Debian's openclipart-png

48 clip-art pictures (public domain), every 22 categories of openclipart-png taken in turn, none
of them a demo image; each is put on white and squashed to the model's 224×224, as a build decodes
it, then saved as a JPEG of quality 75 (about 6 KB each). The int8 model is calibrated on these, so
that it does not depend on the user's collection, and `--precision auto` checks it on them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

CLIPART = Path("/usr/share/openclipart/png")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "generator" / "model" / "check_images"
COUNT = 48


def main() -> None:
    demo = {p.name for p in (ROOT / "generator" / "demo_images").rglob("*.png")}
    folders = sorted(p for p in CLIPART.iterdir() if p.is_dir())
    pools = [
        [p for p in sorted(f.rglob("*.png")) if p.name not in demo and p.stat().st_size > 4000]
        for f in folders
    ]
    chosen: list[Path] = []
    turn = 0
    while len(chosen) < COUNT:
        for pool in pools:
            index = (turn * 37) % len(pool) if pool else None
            if index is not None and pool[index] not in chosen and len(chosen) < COUNT:
                chosen.append(pool[index])
        turn += 1
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    credits = [
        "The int8 calibration and check set (scripts/make_check_images.py made it)",
        "",
        "48 pictures from Open Clip Art Library, as packaged by Debian (openclipart-png), which",
        "releases every work under the Creative Commons Public Domain Dedication. Each was put on",
        "white and squashed to 224x224, then saved as JPEG quality 75.",
        "",
    ]
    for i, src in enumerate(chosen):
        with Image.open(src) as image:
            rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB").resize((224, 224), Image.BILINEAR)
        name = f"{i:02d}.jpg"
        rgb.save(OUT / name, quality=75, optimize=True)
        credits.append(f"{name}\t{src.relative_to(CLIPART)}")
    (OUT / "CREDITS").write_text("\n".join(credits) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
