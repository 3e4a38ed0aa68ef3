"""Stage 2 — decode: read each file once and make both the model input and the thumbnail.

One decode per file: EXIF orientation is applied, transparency is composited on white, any mode
becomes 8-bit RGB. The thumbnail is rebuilt from bare pixels, so no EXIF/GPS/XMP can reach the site.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import stat
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb error threshold (2 × its warning level)
THUMB_FORMAT = "webp"
THUMB_QUALITY = 80
# What discovery looks for (camera MPO files open as JPEG). Sniffing no further keeps files away
# from plugins such as EPS, which hands the file to Ghostscript.
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
DRAFT_FORMATS = frozenset({"JPEG", "MPO"})  # MPO: the JPEG flavour many cameras write
BIG_PIXELS = 40_000_000  # above this, decode one image at a time: bounds peak memory
_BIG_DECODES = threading.BoundedSemaphore(1)
TRANSPOSE = {  # EXIF orientation → the transpose that undoes it (as ImageOps.exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class DecodeError(Exception):
    """This file cannot be used; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Decoded:
    """What the rest of the pipeline needs from one image file."""

    pixels: np.ndarray  # (size, size, 3) uint8, the model input before normalisation
    thumb: bytes  # encoded thumbnail, metadata-free
    thumb_size: tuple[int, int]
    size: tuple[int, int]  # original (width, height) after EXIF orientation
    sha256: str


def decode(path: Path, model_size: int, thumb_size: int) -> Decoded:
    """Decode `path` once; raise DecodeError with a one-line reason if it cannot be used."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise DecodeError("is a folder, not an image file")
        if not stat.S_ISREG(mode):  # reading a named pipe or device would block or never end
            raise DecodeError("not a regular file")
        data = path.read_bytes()
    except OSError as exc:
        raise DecodeError(f"cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise DecodeError("empty file")
    try:
        image, size = _open_rgb(data, model_size, thumb_size)
    except DecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise DecodeError("not an image that Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise DecodeError("image too large (decompression bomb protection)") from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, IndexError) as exc:
        raise DecodeError(f"corrupt or truncated image ({_short(exc)})") from exc
    model = image.resize((model_size, model_size), Image.Resampling.BILINEAR)
    thumb = image.copy()
    thumb.thumbnail((thumb_size, thumb_size), Image.Resampling.LANCZOS)
    return Decoded(
        pixels=np.asarray(model, dtype=np.uint8),
        thumb=encode_thumb(thumb),
        thumb_size=thumb.size,
        size=size,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def encode_thumb(image: Image.Image) -> bytes:
    """Encode from bare pixels: a fresh image has no info dict, so no metadata is written."""
    bare = Image.fromarray(np.asarray(image.convert("RGB")))
    out = io.BytesIO()
    bare.save(out, format=THUMB_FORMAT, quality=THUMB_QUALITY, method=4)
    return out.getvalue()


def _open_rgb(data: bytes, model_size: int, thumb_size: int) -> tuple[Image.Image, tuple[int, int]]:
    """The RGB image, reduced early when it is far larger than needed, and the file's own size
    after orientation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bomb warnings are handled below; EXIF noise is harmless
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise DecodeError(f"image too large ({width}×{height} pixels)")
        if width < 1 or height < 1:
            raise DecodeError("image has no pixels")
        side = max(model_size, thumb_size)
        if image.format in DRAFT_FORMATS:
            image.draft("RGB", (side, side))  # decode at 1/2–1/8 scale when big enough
        orientation = _orientation(image)
        big = image.size[0] * image.size[1] > BIG_PIXELS
        with _BIG_DECODES if big else contextlib.nullcontext():
            image.load()  # first frame of an animation
            image = _shrink(image, model_size, thumb_size)
        turned = orientation in (5, 6, 7, 8)
        if orientation in TRANSPOSE:
            image = image.transpose(TRANSPOSE[orientation])
        return _to_rgb(image), (height, width) if turned else (width, height)


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation) or 1)
    except Exception:  # a broken EXIF block must not cost the image
        return 1


def _shrink(image: Image.Image, model_size: int, thumb_size: int) -> Image.Image:
    """Box-reduce by a whole factor that keeps both sides ≥ model_size and the long side ≥
    thumb_size: a 168-megapixel PNG then costs one full-size buffer, not five."""
    width, height = image.size
    factor = min(width // model_size, height // model_size, max(width, height) // thumb_size)
    if factor < 2:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    try:
        return image.reduce(factor)
    except ValueError:  # a mode reduce() does not support: resize later instead
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode → 8-bit RGB; alpha is composited on white, 16-bit/float scaled, not clipped."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        if mode == "F":
            low, high = float(np.nanmin(array)), float(np.nanmax(array))
            array, top = array - low, max(high - low, 1e-12)
        gray = np.clip(np.nan_to_num(array) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    # "transparency" is a palette index (P) or a PNG tRNS colour key (L, RGB)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if mode == "RGBA" and image.getextrema()[3] == (255, 255):
        has_alpha = False
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]
