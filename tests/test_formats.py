"""Phone and camera formats: HEIC/HEIF (pillow-heif), AVIF (Pillow) and camera RAW (rawpy).

Every fixture is generated here: HEIC and AVIF by their own writers, DNG by a small TIFF writer
below (LibRaw reads it; no library on the registries writes DNG without extra heavy codecs).
"""

from __future__ import annotations

import io
import json
import logging
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.ingest import imaging
from generator.ingest.imaging import RAW_EXTRA, Decoded, DecodeError, decode
from tests.helpers import FakeEmbedder
from tests.test_imaging import BLUE, RED, close, colours, marked, red_corner, riff_chunks

rawpy = pytest.importorskip("rawpy")  # the [raw] extra; `make test` installs it
pillow_heif = pytest.importorskip("pillow_heif")

PHONE_FORMATS = [("HEIF", "heic"), ("AVIF", "avif")]
GREY_BRIGHT, GREY_DARK = 4000, 200  # DNG sensor values, white level 4095


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch) -> None:
    """The 'support is not installed' warning is once per process; each test starts afresh."""
    monkeypatch.setattr(imaging, "_WARNED", set())


def orientation_exif(orientation: int) -> bytes:
    """As bytes: pillow-heif turns an Exif *object's* orientation into nothing (1.8.1)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 30.0, 12.0), "W", (0.0, 7.0, 39.0)
    return exif


def assert_bare(thumb: bytes) -> None:
    """A WebP with image data only: no EXIF, XMP or ICC chunk, nothing from the source file."""
    assert set(riff_chunks(thumb)) <= {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}
    for marker in (b"EXIF", b"XMP ", b"ICCP", b"CameraMaker", b"secret", b"home address"):
        assert marker not in thumb
    with Image.open(io.BytesIO(thumb)) as image:
        assert image.format == "WEBP"
        assert not {"exif", "xmp", "icc_profile"} & set(image.info)
        assert len(image.getexif()) == 0


# --- HEIC/HEIF and AVIF -----------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "suffix"), PHONE_FORMATS)
def test_phone_format_gives_its_colour_and_size(tmp_path, fmt, suffix) -> None:
    path = tmp_path / f"photo.{suffix}"
    Image.new("RGB", (120, 80), (200, 60, 30)).save(path, format=fmt, quality=90)
    assert Image.open(path).format == fmt
    decoded = decode(path, 16, 64)
    assert decoded.size == (120, 80) and decoded.thumb_size == (64, 43)
    assert all(close(colour, (200, 60, 30), 8) for colour in colours(decoded))  # lossy


@pytest.mark.parametrize(("fmt", "suffix"), PHONE_FORMATS)
@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [(1, (64, 32), "top-left"), (6, (32, 64), "top-right"), (8, (32, 64), "bottom-left")],
)
def test_phone_format_rotation_is_applied(tmp_path, fmt, suffix, orientation, size, corner) -> None:
    """Both writers store the rotation as an `irot` box, as phones do; pillow-heif turns the
    pixels itself, Pillow's AVIF reports it as EXIF orientation: the result must be the same."""
    path = tmp_path / f"o{orientation}.{suffix}"
    marked().save(path, format=fmt, exif=orientation_exif(orientation), quality=95)
    assert (b"irot" in path.read_bytes()) == (orientation != 1)
    decoded = decode(path, 16, 128)
    assert decoded.size == size and decoded.thumb_size == size
    assert red_corner(decoded) == corner


@pytest.mark.parametrize(("fmt", "suffix"), PHONE_FORMATS)
def test_phone_format_metadata_never_reaches_the_thumbnail(tmp_path, fmt, suffix) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / f"gps.{suffix}"
    Image.new("RGB", (300, 200), (200, 50, 50)).save(
        path,
        format=fmt,
        exif=gps_exif().tobytes(),
        icc_profile=icc,
        xmp=b"<x:xmpmeta><secret>home address</secret></x:xmpmeta>",
    )
    with Image.open(path) as source:  # the fixture really carries all of it
        assert dict(source.getexif().get_ifd(0x8825))[1] == "N"
        assert {"exif", "xmp", "icc_profile"} <= set(source.info)
    assert_bare(decode(path, 16, 64).thumb)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_format_is_recognised_whatever_its_suffix(tmp_path, fmt) -> None:
    path = tmp_path / "exported.jpg"  # some phone exports misname HEIC files .jpg
    Image.new("RGB", (20, 10), BLUE).save(path, format=fmt)
    decoded = decode(path, 4, 8)
    assert decoded.size == (20, 10)
    assert all(close(colour, BLUE, 12) for colour in colours(decoded))


def test_heif_with_alpha_is_composited_on_white(tmp_path) -> None:
    path = tmp_path / "clear.heic"
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(path, format="HEIF", quality=95)
    assert Image.open(path).mode == "RGBA"
    assert all(close(colour, (255, 255, 255), 8) for colour in colours(decode(path, 4, 8)))


@pytest.mark.parametrize("suffix", ["heic", "avif"])
def test_broken_phone_files_are_skipped_with_a_reason(tmp_path, suffix) -> None:
    fmt = "HEIF" if suffix == "heic" else "AVIF"
    whole = tmp_path / f"whole.{suffix}"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(whole, format=fmt)
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DecodeError) as caught:
        decode(cut, 16, 32)
    assert str(caught.value)


# --- camera RAW: a DNG written here -------------------------------------------------------------


def tiff(ifds: list[tuple[list[tuple[int, int, object]], bytes]]) -> bytes:
    """A little-endian TIFF: each IFD is (tags, strip); tag 273 (StripOffsets) points at the strip.
    Tags are (tag, type, values) with TIFF types 1 BYTE, 2 ASCII, 3 SHORT, 4 LONG, 5 RATIONAL,
    10 SRATIONAL."""
    codes = {1: "B", 3: "H", 4: "I", 5: "I", 10: "i"}

    def pack(typ: int, values) -> tuple[int, bytes]:
        if typ == 2:
            return len(values) + 1, values.encode() + b"\0"
        flat = [v for pair in values for v in pair] if typ in (5, 10) else list(values)
        return len(values), struct.pack(f"<{len(flat)}{codes[typ]}", *flat)

    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    for n, (tags, strip) in enumerate(ifds):
        packed = [(tag, typ, *pack(typ, values)) for tag, typ, values in sorted(tags)]
        extra_at = len(out) + 2 + 12 * len(packed) + 4
        big = [data for *_, data in packed if len(data) > 4]
        strip_at = extra_at + sum(len(data) + len(data) % 2 for data in big)
        body, extra = bytearray(struct.pack("<H", len(packed))), bytearray()
        for tag, typ, count, data in packed:
            data = struct.pack("<I", strip_at) if tag == 273 else data
            if len(data) <= 4:
                body += struct.pack("<HHI", tag, typ, count) + data.ljust(4, b"\0")
            else:
                body += struct.pack("<HHII", tag, typ, count, extra_at + len(extra))
                extra += data + b"\0" * (len(data) % 2)
        last = n == len(ifds) - 1
        body += struct.pack("<I", 0 if last else strip_at + len(strip) + len(strip) % 2)
        out += body + extra + strip + b"\0" * (len(strip) % 2)
    return bytes(out)


def dng(cfa: np.ndarray, orientation: int = 1, preview: bytes | None = None) -> bytes:
    """A minimal DNG 1.4: one 16-bit RGGB mosaic, identity colour matrix, optional JPEG preview."""
    height, width = cfa.shape
    mosaic = cfa.astype("<u2").tobytes()
    one = (1, 1)
    tags = [
        (254, 4, [0]),  # NewSubFileType: the main image
        (256, 4, [width]),
        (257, 4, [height]),
        (258, 3, [16]),
        (259, 3, [1]),
        (262, 3, [32803]),  # PhotometricInterpretation: CFA
        (271, 2, "Dinoclust"),
        (272, 2, "Test"),
        (273, 4, [0]),
        (274, 3, [orientation]),
        (277, 3, [1]),
        (278, 4, [height]),
        (279, 4, [len(mosaic)]),
        (284, 3, [1]),
        (33421, 3, [2, 2]),  # CFARepeatPatternDim
        (33422, 1, [0, 1, 1, 2]),  # CFAPattern: RGGB
        (50706, 1, [1, 4, 0, 0]),  # DNGVersion
        (50708, 2, "Dinoclust Test"),
        (50714, 4, [0]),  # BlackLevel
        (50717, 4, [4095]),  # WhiteLevel
        (50721, 10, [one, (0, 1), (0, 1), (0, 1), one, (0, 1), (0, 1), (0, 1), one]),
        (50728, 5, [one, one, one]),  # AsShotNeutral
        (50778, 3, [21]),  # CalibrationIlluminant1: D65
    ]
    ifds = [(tags, mosaic)]
    if preview is not None:
        with Image.open(io.BytesIO(preview)) as image:
            preview_width, preview_height = image.size
        preview_tags = [
            (254, 4, [1]),  # a reduced-resolution copy
            (256, 4, [preview_width]),
            (257, 4, [preview_height]),
            (258, 3, [8, 8, 8]),
            (259, 3, [7]),  # JPEG
            (262, 3, [6]),  # YCbCr
            (273, 4, [0]),
            (277, 3, [3]),
            (278, 4, [preview_height]),
            (279, 4, [len(preview)]),
        ]
        ifds.append((preview_tags, preview))
    return tiff(ifds)


def bright_corner_mosaic(size: tuple[int, int] = (96, 64)) -> np.ndarray:
    """Dark, with the top-left quadrant bright: colour-neutral, so any demosaic shows it."""
    width, height = size
    cfa = np.full((height, width), GREY_DARK, dtype=np.uint16)
    cfa[: height // 2, : width // 2] = GREY_BRIGHT
    return cfa


def bright_corner(decoded: Decoded) -> str:
    n = decoded.pixels.shape[0]
    grey = decoded.pixels.astype(int).mean(axis=2)
    quadrants = {
        "top-left": grey[: n // 2, : n // 2],
        "top-right": grey[: n // 2, n // 2 :],
        "bottom-left": grey[n // 2 :, : n // 2],
        "bottom-right": grey[n // 2 :, n // 2 :],
    }
    bright = [name for name, q in quadrants.items() if q.mean() > 200]
    assert len(bright) == 1 and all(q.mean() < 100 for q in quadrants.values() if q.mean() <= 200)
    return bright[0]


def jpeg(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, **options)
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_generated_dng_is_a_real_raw_file_for_libraw() -> None:
    with rawpy.imread(io.BytesIO(dng(bright_corner_mosaic(), orientation=6))) as raw:
        assert (raw.sizes.width, raw.sizes.height, raw.sizes.flip) == (96, 64, 6)
        assert raw.raw_pattern.tolist() == [[0, 1], [3, 2]]  # R G / G B (LibRaw's G2 is 3)
        with pytest.raises(rawpy.LibRawNoThumbnailError):
            raw.extract_thumb()


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (1, (96, 64), "top-left"),
        (3, (96, 64), "bottom-right"),
        (6, (64, 96), "top-right"),
        (8, (64, 96), "bottom-left"),
    ],
)
def test_raw_without_preview_is_demosaiced_and_turned(tmp_path, orientation, size, corner) -> None:
    path = write(tmp_path / "shot.DNG", dng(bright_corner_mosaic(), orientation))
    decoded = decode(path, 16, 128)
    assert decoded.size == size  # the sensor image's size, not the half-size demosaic's
    assert decoded.thumb_size == (size[0] // 2, size[1] // 2)  # half size: never enlarged
    assert bright_corner(decoded) == corner
    grey = decoded.pixels.reshape(-1, 3).astype(int)
    assert (grey.max(axis=1) - grey.min(axis=1)).max() <= 12  # neutral stays neutral


class RecordingRaw:
    """The real LibRaw object, with its demosaic calls recorded (RawPy itself is immutable)."""

    def __init__(self, raw, calls: list[dict]) -> None:
        self.raw, self.calls = raw, calls

    def __enter__(self) -> RecordingRaw:
        self.raw.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.raw.__exit__(*exc)

    def __getattr__(self, name: str):
        return getattr(self.raw, name)

    def postprocess(self, **kwargs):
        self.calls.append(kwargs)
        return self.raw.postprocess(**kwargs)


@pytest.fixture
def demosaics(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    imread = rawpy.imread
    monkeypatch.setattr(rawpy, "imread", lambda source: RecordingRaw(imread(source), calls))
    return calls


def test_demosaic_is_half_size_with_camera_white_balance(tmp_path, demosaics) -> None:
    decode(write(tmp_path / "a.dng", dng(bright_corner_mosaic())), 16, 32)
    assert demosaics == [dict(half_size=True, use_camera_wb=True, output_bps=8, user_flip=0)]


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [(1, (96, 64), "top-left"), (6, (64, 96), "top-right"), (8, (64, 96), "bottom-left")],
)
def test_large_enough_preview_is_used_and_turned_like_the_raw(
    tmp_path, demosaics, orientation, size, corner
) -> None:
    """The preview (red/blue) differs from the mosaic (grey), so the colour tells which was
    used. LibRaw hands the preview out with the RAW's orientation as EXIF."""
    preview = jpeg(marked((300, 200)))
    path = write(tmp_path / "with-preview.dng", dng(bright_corner_mosaic(), orientation, preview))
    decoded = decode(path, 16, 64)
    assert decoded.size == size  # the RAW's own size, not the preview's
    assert red_corner(decoded) == corner
    assert decoded.thumb_size == ((64, 43) if size[0] > size[1] else (43, 64))
    assert demosaics == []


@pytest.mark.parametrize(
    ("model_size", "thumb_size"),
    [(16, 400), (250, 64)],  # long side 300 < thumb; short side 200 < model input
)
def test_too_small_preview_falls_back_to_the_demosaic(
    tmp_path, demosaics, model_size, thumb_size
) -> None:
    preview = jpeg(marked((300, 200)))
    path = write(tmp_path / "small-preview.dng", dng(bright_corner_mosaic(), 1, preview))
    decoded = decode(path, model_size, thumb_size)
    assert bright_corner(decoded) == "top-left"
    assert not any(close(colour, RED, 60) for colour in colours(decoded))
    assert len(demosaics) == 1


def test_raw_preview_metadata_never_reaches_the_thumbnail(tmp_path) -> None:
    preview = jpeg(
        Image.new("RGB", (300, 200), (200, 50, 50)),
        exif=gps_exif(),
        xmp=b"<x:xmpmeta><secret>home address</secret></x:xmpmeta>",
    )
    path = write(tmp_path / "gps.dng", dng(bright_corner_mosaic(), 1, preview))
    with rawpy.imread(str(path)) as raw:  # the preview LibRaw hands out carries it all
        handed_out = raw.extract_thumb().data
    for marker in (b"CameraMaker", b"home address", b"Dinoclust"):  # LibRaw adds its own EXIF
        assert marker in handed_out
    decoded = decode(path, 16, 64)
    assert all(close(colour, (200, 50, 50), 8) for colour in colours(decoded))
    assert_bare(decoded.thumb)
    assert_bare(decode(write(tmp_path / "plain.dng", dng(bright_corner_mosaic())), 16, 64).thumb)


def test_bitmap_preview_is_used_with_the_raw_orientation(tmp_path, monkeypatch) -> None:
    """LibRaw returns some cameras' previews as bitmaps; no real file here makes one."""
    pixels = np.asarray(marked((300, 200)))

    class FakeRaw:
        sizes = SimpleNamespace(width=6000, height=4000, flip=6)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

        def extract_thumb(self):
            return SimpleNamespace(format=rawpy.ThumbFormat.BITMAP, data=pixels)

        def postprocess(self, **kwargs):
            pytest.fail("demosaiced although the preview is big enough")

    fake = SimpleNamespace(
        imread=lambda source: FakeRaw(),
        ThumbFormat=rawpy.ThumbFormat,
        **{name: getattr(rawpy, name) for name in dir(rawpy) if name.startswith("LibRaw")},
    )
    monkeypatch.setattr(imaging, "_rawpy", lambda: fake)
    decoded = decode(write(tmp_path / "camera.nef", b"not read by the fake"), 16, 64)
    assert decoded.size == (4000, 6000)
    assert red_corner(decoded) == "top-right"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00" * 200, "not a camera RAW file that LibRaw can read"),
        (b"this is a text file\n", "corrupt or truncated RAW file (Input/output error)"),
    ],
)
def test_unreadable_raw_is_skipped_with_a_reason(tmp_path, data, reason) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(write(tmp_path / "bad.cr2", data), 16, 32)
    assert str(caught.value) == reason


def test_truncated_raw_is_skipped_with_a_reason(tmp_path) -> None:
    data = dng(bright_corner_mosaic((256, 256)))
    with pytest.raises(DecodeError) as caught:
        decode(write(tmp_path / "cut.dng", data[: len(data) // 3]), 16, 32)
    assert str(caught.value)


VALID_DNG = dng(bright_corner_mosaic((32, 32)), 6, jpeg(marked((300, 200))))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(VALID_DNG) - 1), st.integers(0, 255)), max_size=6),
    keep=st.integers(0, len(VALID_DNG)),
)
@example(edits=[(194, 0)], keep=2588)  # LibRaw demosaiced it to one channel: (32, 32, 1)
def test_corrupted_raw_decodes_or_raises_decode_error(tmp_path, edits, keep) -> None:
    data = bytearray(VALID_DNG)
    for offset, value in edits:
        data[offset] = value
    path = write(tmp_path / "fuzz.dng", bytes(data[:keep]))
    try:
        decoded = decode(path, 8, 16)
    except DecodeError as exc:
        assert str(exc)
        return
    assert decoded.pixels.shape == (8, 8, 3) and decoded.pixels.dtype == np.uint8


# --- a format whose support is not installed ----------------------------------------------------


def test_missing_rawpy_skips_raw_files_and_says_what_to_install_once(
    tmp_path, monkeypatch, caplog
) -> None:
    monkeypatch.setitem(sys.modules, "rawpy", None)  # `import rawpy` now raises ImportError
    caplog.set_level(logging.WARNING, logger="generator.ingest.imaging")
    reasons = []
    for name in ("a.CR2", "b.nef", "c.dng"):
        with pytest.raises(DecodeError) as caught:
            decode(write(tmp_path / name, dng(bright_corner_mosaic())), 16, 32)
        reasons.append(str(caught.value))
    assert reasons == [f"camera RAW support is not installed ({RAW_EXTRA})"] * 3
    assert RAW_EXTRA == 'pip install "dinoclust[raw]"'
    warnings = [r.getMessage() for r in caplog.records if r.name == "generator.ingest.imaging"]
    assert warnings == [
        "camera RAW files are skipped: support is not installed; to add it: "
        'pip install "dinoclust[raw]"'
    ]
    make = tmp_path / "still.png"
    Image.new("RGB", (8, 8), RED).save(make)
    assert decode(make, 4, 8).size == (8, 8)  # other formats are unaffected


def test_missing_pillow_heif_is_not_fatal_and_skips_heic_files(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    assert imaging._register_heif() is False
    monkeypatch.setattr(imaging, "HEIF_SUPPORT", False)
    caplog.set_level(logging.WARNING, logger="generator.ingest.imaging")
    for name in ("IMG_0001.HEIC", "IMG_0002.heic"):
        Image.new("RGB", (8, 8), RED).save(tmp_path / name, format="HEIF")
        with pytest.raises(DecodeError) as caught:
            decode(tmp_path / name, 4, 8)
        assert str(caught.value) == "HEIC/HEIF support is not installed (pip install pillow-heif)"
    assert len([r for r in caplog.records if r.name == "generator.ingest.imaging"]) == 1


def test_build_lists_raw_files_skipped_for_the_missing_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "rawpy", None)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, colour in enumerate([RED, BLUE, (0, 200, 0)]):
        Image.new("RGB", (40, 30), colour).save(photos / f"p{i}.heic", format="HEIF")
    write(photos / "shot.CR2", dng(bright_corner_mosaic()))
    config = BuildConfig(inputs=(photos,), output=tmp_path / "site", k_max=2)
    result = build_site(config, embedder=FakeEmbedder())
    report = json.loads((tmp_path / "site" / "report.json").read_text(encoding="utf-8"))
    assert [image["path"] for image in report["images"]] == ["p0.heic", "p1.heic", "p2.heic"]
    reason = 'camera RAW support is not installed (pip install "dinoclust[raw]")'
    why = {"key": "skip_not_installed", "args": {"remedy": RAW_EXTRA, "what": "camera RAW"}}
    assert report["skipped"] == [{"path": "shot.CR2", "reason": reason, "reason_i18n": why}]
    assert [(s.rel, s.reason) for s in result.skipped] == [("shot.CR2", reason)]


def test_pillow_without_avif_skips_avif_files_with_the_remedy(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(imaging, "AVIF_SUPPORT", False)
    path = tmp_path / "web.AVIF"
    Image.new("RGB", (8, 8), RED).save(path, format="AVIF")
    with pytest.raises(DecodeError) as caught:
        decode(path, 4, 8)
    assert str(caught.value) == "AVIF support is not installed (pip install -U pillow)"
