"""Stage 2 — decode: read each file once and make both the model input and the thumbnail.

One decode per file: EXIF orientation is applied, transparency is composited on white, any mode
becomes 8-bit RGB. The thumbnail is rebuilt from bare pixels, so no EXIF/GPS/XMP can reach the site.
HEIC/HEIF comes through the pillow-heif plugin, AVIF through Pillow itself, camera RAW through rawpy
(LibRaw), which is optional: without it RAW files are skipped with a reason saying what to install.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import stat
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError, features

from generator.config import MAX_FILE_SIZE
from generator.errors import printable
from generator.i18n import Message
from generator.ingest.discover import AVIF_SUFFIXES, HEIF_SUFFIXES, RAW_SUFFIXES
from generator.sizes import format_size
from generator.version import package_version

if TYPE_CHECKING:
    import rawpy

log = logging.getLogger(__name__)

MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb error threshold (2 × its warning level)
# The largest file read (--max-file-size, config.MAX_FILE_SIZE): a file is read whole before it is
# decoded, so a 10 GB file named big.jpg took 10 GB of memory. 2 GB holds a 200 MP camera RAW file
# (14-bit: about 350 MB) or a 16-bit 100 MP TIFF (600 MB) with room to spare; the pixels are
# bounded by MAX_PIXELS.
_MAX_FILE_BYTES = MAX_FILE_SIZE
THUMB_FORMAT = "webp"
THUMB_QUALITY = 80
# libwebp's effort (0-6). Thumbnails, in every grid, keep 4. Previews use 2: on 800 px clip art
# and 12 MP photos it encodes 2.2-2.8x faster (3.3 against 7.0 ms, 8.4 against 23 ms) for 0.1 dB
# less PSNR and 0-4 % more bytes; at 4 the preview was the decode workers' largest cost.
THUMB_METHOD = 4
PREVIEW_METHOD = 2


def _register_heif() -> bool:
    """Teach Pillow HEIC/HEIF once, at import; a missing pillow-heif only costs those files."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True


HEIF_SUPPORT = _register_heif()
AVIF_SUPPORT = "avif" in features.modules and bool(features.check_module("avif"))
Image.init()
# What discovery looks for (camera MPO files open as JPEG). Sniffing no further keeps files away
# from plugins such as EPS, which hands the file to Ghostscript. Pillow raises KeyError for a name
# it has no plugin for, so AVIF (Pillow ≥ 11.2) and HEIF (pillow-heif) are listed only if known.
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF") + tuple(
    name for name in ("AVIF", "HEIF") if name in Image.OPEN
)
DRAFT_FORMATS = frozenset({"JPEG", "MPO"})  # MPO: the JPEG flavour many cameras write
BIG_PIXELS = 40_000_000  # above this, decode one image at a time: bounds peak memory
STRIP_BYTES = 32 << 20  # _reduce works on strips of about this size
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
RAW_FLIP = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}  # LibRaw sizes.flip → EXIF orientation
RAW_EXTRA = 'pip install "dinoclust[raw]"'
_WARNED: set[str] = set()  # formats whose missing support was already logged in this process
_WARNED_LOCK = threading.Lock()


class DecodeError(Exception):
    """This file cannot be used; `why` is the reason shown to the user (str(): in English)."""

    def __init__(self, key: str, **args: object) -> None:
        self.why = Message.of(key, **args)
        super().__init__(self.why.text())

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str], dict[str, Message]]:
        """Picklable, so that a decode worker process can send it back unchanged."""
        return (DecodeError, ("skip_empty",), {"why": self.why, "args": self.args})

    def __setstate__(self, state: dict[str, object]) -> None:
        self.why = state["why"]  # type: ignore[assignment]
        self.args = state["args"]  # type: ignore[assignment]


@dataclass(frozen=True)
class Decoded:
    """What the rest of the pipeline needs from one image file."""

    pixels: np.ndarray  # (size, size, 3) uint8, the model input before normalisation
    thumb: bytes  # encoded thumbnail, metadata-free
    thumb_size: tuple[int, int]
    size: tuple[int, int]  # original (width, height) after EXIF orientation
    sha256: str
    preview: bytes | None = None  # the larger image for the preview dialog, metadata-free
    preview_size: tuple[int, int] | None = None  # None: the source is no larger than the thumb
    stat: tuple[int, int] | None = None  # (size, mtime_ns) before reading: memoises the hash


def unsupported(path: Path) -> DecodeError | None:
    """The reason `path` cannot be decoded here because its format's support is not installed
    (logged once per process), or None."""
    missing = _missing_support(path.suffix.lower())
    if missing:
        return DecodeError("skip_not_installed", what=missing[0], remedy=missing[1])
    return None


@contextlib.contextmanager
def _as_decode_error() -> Iterator[None]:
    """What Pillow (or LibRaw) raises on a file it cannot decode, as the reason the file is
    skipped; a DecodeError passes unchanged."""
    try:
        yield
    except DecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise DecodeError("skip_not_image") from exc
    except Image.DecompressionBombError as exc:
        raise DecodeError("skip_bomb") from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, IndexError) as exc:
        raise DecodeError("skip_corrupt", error=_short(exc)) from exc


def decode(path: Path, model_size: int, thumb_size: int, preview_size: int = 0) -> Decoded:
    """Decode `path` once; raise DecodeError with a one-line reason if it cannot be used.
    With `preview_size`, a second, larger image comes from the same decode."""
    missing = _missing_support(path.suffix.lower())
    if missing:
        raise DecodeError("skip_not_installed", what=missing[0], remedy=missing[1])
    try:
        st = path.stat()
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            raise DecodeError("skip_is_folder")
        if not stat.S_ISREG(mode):  # reading a named pipe or device would block or never end
            raise DecodeError("skip_not_regular")
        if st.st_size > _MAX_FILE_BYTES:
            limit = format_size(_MAX_FILE_BYTES)
            raise DecodeError("skip_file_too_large", size=format_size(st.st_size), limit=limit)
        data = path.read_bytes()
    except OSError as exc:
        raise DecodeError("skip_unreadable", error=exc.strerror or exc) from exc
    if not data:
        raise DecodeError("skip_empty")
    with _as_decode_error():
        side = max(thumb_size, preview_size)  # the largest image made from this decode
        if path.suffix.lower() in RAW_SUFFIXES:
            image, size = _open_raw(data, model_size, side)
        else:
            image, size = _open_rgb(data, model_size, side)
    model = image.resize((model_size, model_size), Image.Resampling.BILINEAR)
    thumb = image.copy()
    thumb.thumbnail((thumb_size, thumb_size), Image.Resampling.LANCZOS)
    preview = _preview(image, thumb.size, preview_size)
    return Decoded(
        pixels=np.asarray(model, dtype=np.uint8),
        thumb=encode_thumb(thumb),
        thumb_size=thumb.size,
        size=size,
        sha256=hashlib.sha256(data).hexdigest(),
        preview=None if preview is None else encode_thumb(preview, method=PREVIEW_METHOD),
        preview_size=None if preview is None else preview.size,
        stat=(st.st_size, st.st_mtime_ns),
    )


def limit_file_size(limit: int) -> None:
    """--max-file-size, in this process (and in each decode worker, as it starts)."""
    global _MAX_FILE_BYTES
    _MAX_FILE_BYTES = limit


def share_big_decodes(semaphore: threading.BoundedSemaphore | None) -> None:
    """In a decode worker process: one semaphore shared by all workers, so that at most one
    very large image is decoded at a time across processes, as across threads."""
    global _BIG_DECODES
    if semaphore is not None:
        _BIG_DECODES = semaphore


def _preview(image: Image.Image, thumb: tuple[int, int], preview_size: int) -> Image.Image | None:
    """The preview image, or None when it would be no larger than the thumbnail."""
    if preview_size <= 0 or max(image.size) <= max(thumb):
        return None
    preview = image.copy()
    preview.thumbnail((preview_size, preview_size), Image.Resampling.LANCZOS)
    return preview


def encode_thumb(
    image: Image.Image, quality: int = THUMB_QUALITY, method: int = THUMB_METHOD
) -> bytes:
    """Encode from bare pixels: a fresh image has no info dict, so no metadata is written."""
    bare = Image.fromarray(np.asarray(image.convert("RGB")))
    out = io.BytesIO()
    bare.save(out, format=THUMB_FORMAT, quality=quality, method=method)
    return out.getvalue()


def _missing_support(suffix: str) -> tuple[str, str] | None:
    """The format and its install command, if its decoder is not installed. The log says it once
    per run (a process), not once per file: a folder of 500 RAW files needs one hint, not 500."""
    if suffix in HEIF_SUFFIXES and not HEIF_SUPPORT:
        what, remedy = "HEIC/HEIF", "pip install pillow-heif"
    elif suffix in AVIF_SUFFIXES and not AVIF_SUPPORT:
        what, remedy = "AVIF", "pip install -U pillow"
    elif suffix in RAW_SUFFIXES and _rawpy() is None:
        what, remedy = "camera RAW", RAW_EXTRA
    else:
        return None
    with _WARNED_LOCK:
        first = what not in _WARNED
        _WARNED.add(what)
    if first:
        log.warning("%s files are skipped: support is not installed; to add it: %s", what, remedy)
    return what, remedy


def _rawpy() -> ModuleType | None:
    """rawpy is an optional extra; importing it again is a dictionary look-up."""
    try:
        import rawpy
    except ImportError:
        return None
    return rawpy


def _open_rgb(data: bytes, model_size: int, thumb_size: int) -> tuple[Image.Image, tuple[int, int]]:
    """The RGB image, reduced early when it is far larger than needed, and the file's own size
    after orientation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bomb warnings are handled below; EXIF noise is harmless
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = image.size
        image, turned = _load_rgb(image, model_size, thumb_size)
        return image, (height, width) if turned else (width, height)


def _load_rgb(
    image: Image.Image, model_size: int, thumb_size: int, default_orientation: int = 1
) -> tuple[Image.Image, bool]:
    """Load an opened image as upright RGB, and whether turning it swapped width and height.
    `default_orientation` applies when the image has no EXIF orientation of its own (a RAW
    file's preview or demosaic, turned by LibRaw's flip)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise DecodeError("skip_too_large", width=width, height=height)
        if width < 1 or height < 1:
            raise DecodeError("skip_no_pixels")
        side = max(model_size, thumb_size)
        if image.format in DRAFT_FORMATS:  # decode at 1/2–1/8 scale when big enough:
            # the long side must keep `side`, the short one the model's input
            wide = image.size[0] >= image.size[1]
            image.draft("RGB", (side, model_size) if wide else (model_size, side))
        orientation = _orientation(image, default_orientation)
        big = image.size[0] * image.size[1] > BIG_PIXELS
        with _BIG_DECODES if big else contextlib.nullcontext():
            image.load()  # first frame of an animation
            image = _shrink(image, model_size, thumb_size)
        turned = orientation in (5, 6, 7, 8)
        if orientation in TRANSPOSE:
            image = image.transpose(TRANSPOSE[orientation])
        return _to_rgb(image), turned


def _orientation(image: Image.Image, default: int = 1) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation) or default)
    except Exception:  # a broken EXIF block must not cost the image
        return default


def _open_raw(data: bytes, model_size: int, thumb_size: int) -> tuple[Image.Image, tuple[int, int]]:
    """Camera RAW: the embedded JPEG preview when it is big enough (fast), else a half-size
    demosaic. Either way the size reported is the photo's, after orientation."""
    rawpy = _rawpy()
    if rawpy is None:  # decode() checks first; this keeps the function safe on its own
        raise DecodeError("skip_not_installed", what="camera RAW", remedy=RAW_EXTRA)
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            width, height, flip = raw.sizes.width, raw.sizes.height, raw.sizes.flip
            if width * height > MAX_PIXELS:
                raise DecodeError("skip_too_large", width=width, height=height)
            orientation = RAW_FLIP.get(flip, 1)
            preview = _raw_preview(raw, rawpy, model_size, thumb_size)
            if preview is None:
                with _BIG_DECODES if width * height > BIG_PIXELS else contextlib.nullcontext():
                    # user_flip=0: LibRaw leaves the pixels as stored; _load_rgb turns them
                    pixels = raw.postprocess(
                        half_size=True, use_camera_wb=True, output_bps=8, user_flip=0
                    )
                if pixels.shape[2:] == (1,):  # one channel (a monochrome or damaged file)
                    pixels = pixels[:, :, 0]
                try:
                    preview = Image.fromarray(pixels)
                except TypeError as exc:  # damaged: a pixel layout no image has
                    shape = "×".join(map(str, pixels.shape))
                    raise DecodeError("skip_raw_corrupt", error=f"pixels {shape}") from exc
            image, turned = _load_rgb(preview, model_size, thumb_size, orientation)
    except rawpy.LibRawFileUnsupportedError as exc:
        raise DecodeError("skip_raw_unreadable") from exc
    except (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError) as exc:
        raise DecodeError("skip_raw_too_large") from exc
    except rawpy.LibRawIOError as exc:  # LibRaw read past the end of the data
        raise DecodeError("skip_raw_truncated", error=_libraw_text(exc)) from exc
    except rawpy.LibRawError as exc:
        raise DecodeError("skip_raw_corrupt", error=_libraw_text(exc)) from exc
    return image, (height, width) if turned else (width, height)


def _raw_preview(
    raw: rawpy.RawPy, rawpy: ModuleType, model_size: int, thumb_size: int
) -> Image.Image | None:
    """The camera's embedded preview, if it is large enough for both the model input and the
    thumbnail; None means demosaic instead."""
    try:
        thumb = raw.extract_thumb()
        if thumb.format == rawpy.ThumbFormat.JPEG:
            image = Image.open(io.BytesIO(thumb.data), formats=("JPEG", "MPO"))
        elif thumb.format == rawpy.ThumbFormat.BITMAP:
            image = Image.fromarray(np.ascontiguousarray(thumb.data))
        else:
            return None
    except (rawpy.LibRawError, OSError, ValueError, TypeError):  # no or broken preview
        return None
    short, long = sorted(image.size)
    if short < model_size or long < max(model_size, thumb_size):
        return None
    return image


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
        return _reduce(image, factor)
    except ValueError:  # a mode reduce() does not support: resize later instead
        return image


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """image.reduce(factor), strip by strip. For RGBA and LA, Pillow's reduce first makes a
    premultiplied copy of the whole image (another 670 MB for a 168-megapixel RGBA PNG); strips
    whose height is a multiple of `factor` hold whole boxes, so the pixels are the same."""
    width, height = image.size
    rows = max(1, STRIP_BYTES // (width * len(image.getbands()) * factor)) * factor
    if rows >= height:
        return image.reduce(factor)
    out = Image.new(image.mode, (-(-width // factor), -(-height // factor)))
    out.info = dict(image.info)
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(top + rows, height)))
        out.paste(strip.reduce(factor), (0, top // factor))
    return out


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


def _libraw_text(exc: BaseException) -> str:
    """rawpy's messages are bytes: show b'Input/output error' as Input/output error."""
    first = exc.args[0] if exc.args else None
    if isinstance(first, bytes):
        return first.decode("utf-8", "replace")[:120] or type(exc).__name__
    return _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def thumb_dimensions(data: bytes) -> tuple[int, int]:
    """An encoded thumbnail's (width, height), read from its header only."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def name_tile(name: str, size: int) -> bytes:
    """A square tile showing a file name, wrapped and centred: the thumbnail of an image known
    only by its path (`build --embeddings` without thumbnails or --images-root)."""
    from PIL import ImageDraw, ImageFont

    name = printable(name)  # a line break or escape in a name is drawn as \n, \x1b
    tile = Image.new("RGB", (size, size), (232, 232, 232))
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default(size=max(9, size // 10))
    margin = max(4, size // 12)
    lines = [""]
    for char in name:
        if draw.textlength(lines[-1] + char, font=font) > size - 2 * margin:
            lines.append("")
        lines[-1] += char
    text = "\n".join(lines[:5])
    box = draw.multiline_textbbox((0, 0), text, font=font, align="center")
    origin = ((size - (box[2] - box[0])) / 2, (size - (box[3] - box[1])) / 2)
    draw.multiline_text(origin, text, fill=(60, 60, 60), font=font, align="center")
    return encode_thumb(tile)


# The chunks of a WebP that hold pixels and nothing else: EXIF, XMP, ICCP (and any other) would
# carry metadata into the site, as would bytes after the RIFF container.
PIXEL_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH"})


def site_image(data: bytes) -> bytes:
    """`data` as the site may hold it. A WebP of pixel chunks only (what `encode_thumb` writes)
    is kept as it is; anything else (a JPEG from another tool, a WebP with EXIF) is decoded and
    encoded again from bare pixels. Raises DecodeError for bytes that are not an image."""
    if bare_webp(data):
        return data
    with _as_decode_error(), Image.open(io.BytesIO(data), formats=FORMATS) as image:
        image.load()
        return encode_thumb(_to_rgb(image))


def bare_webp(data: bytes) -> bool:
    """Whether `data` is one RIFF WebP container of pixel chunks only (headers alone: about 5 µs
    a thumbnail on a busy 2-core EPYC, so 5 s a million rows)."""
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    end = 8 + int.from_bytes(data[4:8], "little")
    if end != len(data):
        return False
    at = 12
    while at < end:
        if at + 8 > end or data[at : at + 4] not in PIXEL_CHUNKS:
            return False
        at += 8 + int.from_bytes(data[at + 4 : at + 8], "little")
        at += at & 1  # chunks are padded to an even length
    return at == end


# Vectors and thumbnails depend on the decoder: imaging.py and the libraries it decodes with.


DECODE_PACKAGES = ("pillow", "pillow-heif", "rawpy")


@cache
def decode_version() -> str:
    """The decoder's identity: a fix in imaging.py or a new Pillow gives new vectors and thumbs."""
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update(json.dumps({p: package_version(p) for p in DECODE_PACKAGES}).encode())
    return digest.hexdigest()[:16]
