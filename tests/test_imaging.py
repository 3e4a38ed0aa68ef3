"""Stage 2 — decode: exact pixels for each mode, orientation, metadata-free thumbnails, errors."""

from __future__ import annotations

import hashlib
import io
import os
import resource
import struct
import sys
import threading
import time
import zlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, JpegImagePlugin

from generator.ingest import imaging
from generator.ingest.imaging import Decoded, DecodeError, decode
from tests.helpers import make_image

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def colours(decoded: Decoded) -> set[tuple[int, ...]]:
    """The distinct colours of the model input."""
    return {tuple(int(v) for v in row) for row in decoded.pixels.reshape(-1, 3)}


def solid(decoded: Decoded) -> tuple[int, ...]:
    (colour,) = colours(decoded)
    return colour


def close(actual, expected, tolerance: int) -> bool:
    return all(abs(int(a) - int(e)) <= tolerance for a, e in zip(actual, expected, strict=True))


def riff_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    chunks, offset = [], 12
    while offset + 8 <= len(data):
        fourcc, size = struct.unpack_from("<4sI", data, offset)
        chunks.append(fourcc)
        offset += 8 + size + (size & 1)
    return chunks


# --- colour modes -----------------------------------------------------------------------------


def test_rgb_png_gives_exact_pixels_shape_and_dtype(tmp_path) -> None:
    path = make_image(tmp_path / "rgb.png", (12, 34, 56), size=(40, 30))
    decoded = decode(path, 16, 64)
    assert decoded.pixels.shape == (16, 16, 3) and decoded.pixels.dtype == np.uint8
    assert solid(decoded) == (12, 34, 56)
    assert decoded.size == (40, 30)
    assert decoded.thumb_size == (40, 30)  # never enlarged


def test_model_input_is_squashed_not_cropped(tmp_path) -> None:
    image = Image.new("RGB", (80, 20), RED)
    image.paste(BLUE, (40, 0, 80, 20))  # right half blue
    decoded = decode(save(image, tmp_path / "wide.png"), 8, 64)
    assert decoded.pixels.shape == (8, 8, 3)
    assert {tuple(p) for p in decoded.pixels[:, :3].reshape(-1, 3).tolist()} == {RED}
    assert {tuple(p) for p in decoded.pixels[:, 5:].reshape(-1, 3).tolist()} == {BLUE}


def test_fully_transparent_rgba_becomes_white(tmp_path) -> None:
    path = save(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), tmp_path / "clear.png")
    assert solid(decode(path, 4, 8)) == WHITE


def test_half_transparent_red_is_composited_on_white(tmp_path) -> None:
    path = save(Image.new("RGBA", (10, 10), (255, 0, 0, 128)), tmp_path / "half.png")
    assert close(solid(decode(path, 4, 8)), (255, 127, 127), 2)


def test_opaque_rgba_keeps_its_colour(tmp_path) -> None:
    path = save(Image.new("RGBA", (10, 10), (10, 20, 30, 255)), tmp_path / "opaque.png")
    assert solid(decode(path, 4, 8)) == (10, 20, 30)


def test_la_alpha_is_composited_on_white(tmp_path) -> None:
    image = Image.new("LA", (10, 10), (0, 0))
    image.paste((0, 255), (5, 0, 10, 10))  # right half opaque black
    decoded = decode(save(image, tmp_path / "la.png"), 10, 10)
    assert {tuple(p) for p in decoded.pixels[:, :4].reshape(-1, 3).tolist()} == {WHITE}
    assert {tuple(p) for p in decoded.pixels[:, 6:].reshape(-1, 3).tolist()} == {(0, 0, 0)}


def test_greyscale_becomes_three_equal_channels(tmp_path) -> None:
    path = save(Image.new("L", (10, 10), 77), tmp_path / "grey.png")
    assert solid(decode(path, 4, 8)) == (77, 77, 77)


def test_one_bit_image_becomes_black_and_white(tmp_path) -> None:
    image = Image.new("1", (10, 10), 0)
    image.paste(1, (5, 0, 10, 10))
    decoded = decode(save(image, tmp_path / "bw.png"), 10, 10)
    assert {tuple(p) for p in decoded.pixels[:, :5].reshape(-1, 3).tolist()} == {(0, 0, 0)}
    assert {tuple(p) for p in decoded.pixels[:, 5:].reshape(-1, 3).tolist()} == {WHITE}


def palette_image() -> Image.Image:
    """Index 0 → green (marked transparent below), index 1 → red; left half 0, right half 1."""
    image = Image.new("P", (10, 10), 0)
    image.putpalette([0, 255, 0, 255, 0, 0] + [0, 0, 0] * 254)
    image.paste(1, (5, 0, 10, 10))
    return image


def test_palette_image_without_transparency_keeps_its_colours(tmp_path) -> None:
    decoded = decode(save(palette_image(), tmp_path / "p.png"), 10, 10)
    assert {tuple(p) for p in decoded.pixels[:, :4].reshape(-1, 3).tolist()} == {(0, 255, 0)}
    assert {tuple(p) for p in decoded.pixels[:, 6:].reshape(-1, 3).tolist()} == {RED}


@pytest.mark.parametrize("suffix", ["png", "gif"])
def test_palette_transparency_is_composited_on_white(tmp_path, suffix) -> None:
    path = save(palette_image(), tmp_path / f"pt.{suffix}", transparency=0)
    decoded = decode(path, 10, 10)
    assert {tuple(p) for p in decoded.pixels[:, :4].reshape(-1, 3).tolist()} == {WHITE}
    assert {tuple(p) for p in decoded.pixels[:, 6:].reshape(-1, 3).tolist()} == {RED}


@pytest.mark.parametrize(
    ("mode", "colour", "transparent"),
    [("RGB", (0, 0, 0), (0, 0, 0)), ("L", 0, 0)],
)
def test_png_trns_colour_key_is_composited_on_white(tmp_path, mode, colour, transparent) -> None:
    """A tRNS chunk on an RGB or grey PNG marks one colour transparent; it must turn white too."""
    image = Image.new(mode, (10, 10), colour)
    image.paste(200 if mode == "L" else (200, 0, 0), (5, 0, 10, 10))
    decoded = decode(save(image, tmp_path / "trns.png", transparency=transparent), 10, 10)
    assert {tuple(p) for p in decoded.pixels[:, :4].reshape(-1, 3).tolist()} == {WHITE}
    right = (200, 200, 200) if mode == "L" else (200, 0, 0)
    assert {tuple(p) for p in decoded.pixels[:, 6:].reshape(-1, 3).tolist()} == {right}


def test_cmyk_jpeg_becomes_rgb(tmp_path) -> None:
    path = save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    for colour in colours(decode(path, 4, 8)):
        assert close(colour, RED, 6)


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path) -> None:
    values = np.array([[65535, 32768, 256, 0]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    decoded = decode(path, 4, 8)
    assert decoded.pixels.shape == (4, 4, 3)
    # squashed 4×1 → 4×4 with bilinear keeps each column's value exactly
    assert decoded.pixels[0, :, 0].tolist() == [255, 128, 1, 0]
    assert (decoded.pixels == decoded.pixels[:, :, :1]).all()


def test_dark_sixteen_bit_image_stays_dark(tmp_path) -> None:
    path = save(Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16)), tmp_path / "dark.png")
    assert solid(decode(path, 4, 8)) == (4, 4, 4)  # 1000 / 65535 × 255 ≈ 3.9, not clipped to 255


def test_float_tiff_is_stretched_to_the_full_range(tmp_path) -> None:
    values = np.array([[-1.5, 0.0, 0.5, 2.5]], dtype=np.float32)
    path = save(Image.fromarray(values), tmp_path / "float.tif")
    assert Image.open(path).mode == "F"
    row = decode(path, 4, 8).pixels[0, :, 0].tolist()
    assert row[0] == 0 and row[-1] == 255
    assert row == sorted(row) and close(row, [0, 96, 128, 255], 1)


def test_animated_gif_uses_the_first_frame(tmp_path) -> None:
    frames = [Image.new("RGB", (12, 12), colour) for colour in (RED, BLUE, (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 3
    assert solid(decode(path, 4, 8)) == RED


def test_one_by_one_image(tmp_path) -> None:
    path = save(Image.new("RGB", (1, 1), (9, 8, 7)), tmp_path / "dot.png")
    decoded = decode(path, 16, 32)
    assert decoded.size == (1, 1) and decoded.thumb_size == (1, 1)
    assert decoded.pixels.shape == (16, 16, 3) and solid(decoded) == (9, 8, 7)


def test_extreme_aspect_ratio(tmp_path) -> None:
    path = save(Image.new("RGB", (8000, 12), (1, 2, 3)), tmp_path / "strip.png")
    decoded = decode(path, 16, 64)
    assert decoded.size == (8000, 12)
    assert decoded.thumb_size == (64, 1)
    assert decoded.pixels.shape == (16, 16, 3) and solid(decoded) == (1, 2, 3)
    assert Image.open(io.BytesIO(decoded.thumb)).size == (64, 1)


# --- orientation ------------------------------------------------------------------------------


def marked(size: tuple[int, int] = (64, 32)) -> Image.Image:
    """Blue, with the top-left quadrant red, so every rotation and flip is visible."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0] // 2, size[1] // 2))
    return image


def red_corner(decoded: Decoded) -> str:
    """Which quadrant of the (squashed, square) model input is red."""
    n = decoded.pixels.shape[0]
    corners = {
        "top-left": (n // 4, n // 4),
        "top-right": (n // 4, 3 * n // 4),
        "bottom-left": (3 * n // 4, n // 4),
        "bottom-right": (3 * n // 4, 3 * n // 4),
    }
    red = [name for name, (y, x) in corners.items() if close(decoded.pixels[y, x], RED, 40)]
    assert len(red) == 1, red
    return red[0]


@pytest.mark.parametrize("suffix", ["jpg", "png"])
@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (1, (64, 32), "top-left"),
        (3, (64, 32), "bottom-right"),
        (6, (32, 64), "top-right"),
        (8, (32, 64), "bottom-left"),
    ],
)
def test_exif_orientation_is_applied(tmp_path, suffix, orientation, size, corner) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(marked(), tmp_path / f"o{orientation}.{suffix}", exif=exif)
    assert Image.open(path).getexif()[0x0112] == orientation
    decoded = decode(path, 16, 128)
    assert decoded.size == size
    assert decoded.thumb_size == size
    assert red_corner(decoded) == corner


def decode_in_draft_mode(path: Path) -> Decoded:
    """decode(), asserting that the JPEG decoder was asked for a reduced-scale draft once."""
    draft = JpegImagePlugin.JpegImageFile.draft
    with mock.patch.object(
        JpegImagePlugin.JpegImageFile, "draft", autospec=True, side_effect=draft
    ) as spy:
        decoded = decode(path, 64, 128)
    spy.assert_called_once()
    return decoded


def test_big_jpeg_keeps_its_real_size_while_decoded_in_draft_mode(tmp_path) -> None:
    path = save(marked((2400, 1600)), tmp_path / "big.jpg", quality=90)
    decoded = decode_in_draft_mode(path)
    assert decoded.size == (2400, 1600)  # the file's size, not the reduced draft's
    assert decoded.thumb_size == (128, 85)
    assert red_corner(decoded) == "top-left"


def test_big_rotated_jpeg_reports_the_rotated_real_size(tmp_path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(marked((1600, 800)), tmp_path / "big6.jpg", exif=exif, quality=90)
    decoded = decode(path, 32, 64)
    assert decoded.size == (800, 1600)
    assert decoded.thumb_size == (32, 64)
    assert red_corner(decoded) == "top-right"


def test_big_mpo_camera_jpeg_is_also_decoded_in_draft_mode(tmp_path) -> None:
    """Many cameras write MPO (JPEG + extra frames); Pillow names the format "MPO", not "JPEG"."""
    path = tmp_path / "camera.jpg"
    marked((2400, 1600)).save(path, format="MPO", save_all=True, append_images=[marked()])
    assert Image.open(path).format == "MPO"
    decoded = decode_in_draft_mode(path)
    assert decoded.size == (2400, 1600)
    assert red_corner(decoded) == "top-left"


# --- thumbnails -------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "thumb"), [((1000, 500), (128, 64)), ((300, 900), (43, 128))])
def test_thumbnail_longest_side_is_thumb_size(tmp_path, size, thumb) -> None:
    path = make_image(tmp_path / "big.png", (40, 150, 90), size=size)
    decoded = decode(path, 16, 128)
    assert decoded.size == size
    assert decoded.thumb_size == thumb
    with Image.open(io.BytesIO(decoded.thumb)) as image:
        assert image.format == "WEBP" and image.size == thumb and image.mode == "RGB"
        assert close(image.getpixel((thumb[0] // 2, thumb[1] // 2)), (40, 150, 90), 4)


def test_thumbnail_carries_no_metadata_even_when_the_source_has_gps(tmp_path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x0112] = 1
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 30.0, 12.0), "W", (0.0, 7.0, 39.0)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = save(
        Image.new("RGB", (300, 200), (200, 50, 50)),
        tmp_path / "gps.jpg",
        exif=exif,
        icc_profile=icc,
        xmp=b"<x:xmpmeta><secret>home address</secret></x:xmpmeta>",
    )
    with Image.open(path) as source:  # the fixture really carries all of it
        assert dict(source.getexif().get_ifd(0x8825))[1] == "N"
        assert {"exif", "xmp", "icc_profile"} <= set(source.info)

    thumb = decode(path, 16, 64).thumb
    assert set(riff_chunks(thumb)) <= {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}
    for marker in (b"EXIF", b"XMP ", b"ICCP", b"CameraMaker", b"secret", b"home address"):
        assert marker not in thumb
    with Image.open(io.BytesIO(thumb)) as image:
        assert not {"exif", "xmp", "icc_profile"} & set(image.info)
        assert len(image.getexif()) == 0
        assert len(image.getexif().get_ifd(0x8825)) == 0


def test_decoding_is_deterministic_and_sha256_is_of_the_file_bytes(tmp_path) -> None:
    path = make_image(tmp_path / "noisy.jpg", size=(300, 200), noise=40, seed=3)
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(path.read_bytes())
    first, second, third = decode(path, 32, 64), decode(path, 32, 64), decode(copy, 32, 64)
    assert first.thumb == second.thumb == third.thumb
    assert np.array_equal(first.pixels, second.pixels)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert first.sha256 == third.sha256 == expected
    other = make_image(tmp_path / "other.jpg", size=(300, 200), noise=40, seed=4)
    assert decode(other, 32, 64).sha256 != expected


# --- files that cannot be used ----------------------------------------------------------------


def reason(path: Path) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(path, 16, 32)
    return str(caught.value)


def test_empty_file(tmp_path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert reason(path) == "empty file"


def test_text_file_named_png(tmp_path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n", encoding="utf-8")
    assert reason(path) == "not an image that Pillow can read"


def test_missing_file(tmp_path) -> None:
    assert reason(tmp_path / "gone.png").startswith("cannot read file")


def test_a_folder_passed_as_path(tmp_path) -> None:
    (tmp_path / "folder.jpg").mkdir()
    assert reason(tmp_path / "folder.jpg") == "is a folder, not an image file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_named_pipe_is_refused_without_hanging(tmp_path) -> None:
    """A FIFO called x.jpg inside a photo folder must not block the build forever."""
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome: list[BaseException | Decoded] = []

    def run() -> None:
        try:
            outcome.append(decode(fifo, 16, 32))
        except BaseException as exc:  # handed over to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # unblock the reader so the thread can finish
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(5)
        pytest.fail("decode() blocked on a named pipe")
    assert len(outcome) == 1 and isinstance(outcome[0], DecodeError)
    assert str(outcome[0]) == "not a regular file"


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_truncated_file(tmp_path, suffix) -> None:
    path = make_image(tmp_path / f"full.{suffix}", size=(200, 150), noise=60)
    data = path.read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    assert reason(cut).startswith("corrupt or truncated image")


def png_with_header_size(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("1", (1, 1)).save(out, format="PNG")
    data = bytearray(out.getvalue())
    assert data[12:16] == b"IHDR"
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_with_header_size(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (8, 8)).save(out, format="JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


@pytest.mark.parametrize(
    ("suffix", "data"),
    [
        ("png", png_with_header_size(30000, 30000)),
        ("png", png_with_header_size(2_000_000, 100)),
        ("jpg", jpeg_with_header_size(60000, 60000)),
    ],
)
def test_decompression_bomb_is_refused_quickly_without_allocating(tmp_path, suffix, data) -> None:
    path = tmp_path / f"bomb.{suffix}"
    path.write_bytes(data)
    assert len(data) < 1000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    assert reason(path).startswith("image too large")
    assert time.perf_counter() - start < 1
    if sys.platform.startswith("linux"):  # ru_maxrss is in KiB here (bytes on macOS)
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
        assert grown_mib < 100


def test_eps_disguised_as_jpeg_is_not_handed_to_ghostscript(tmp_path) -> None:
    """Only the formats discovery looks for are decoded; EPS would run Ghostscript on the file."""
    path = tmp_path / "innocent.jpg"
    path.write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
        b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n"
    )
    with mock.patch("subprocess.check_call") as check_call, mock.patch("subprocess.Popen") as popen:
        assert reason(path) == "not an image that Pillow can read"
    check_call.assert_not_called()
    popen.assert_not_called()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_every_discovered_format_decodes_whatever_its_suffix(tmp_path, fmt) -> None:
    path = tmp_path / "wrong-suffix.png"
    Image.new("RGB", (20, 10), (0, 0, 255)).save(path, format=fmt)
    decoded = decode(path, 4, 8)
    assert decoded.size == (20, 10)
    assert all(close(colour, BLUE, 8) for colour in colours(decoded))  # JPEG, WebP: lossy


# --- fuzzing ----------------------------------------------------------------------------------


def encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


VALID = {fmt: encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")}


@st.composite
def corrupted(draw) -> bytes:
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


MAGIC = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
]


@st.composite
def magic_then_noise(draw) -> bytes:
    """Random bytes behind a real signature, so they get past format sniffing into the decoders."""
    return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=512))


FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def decodes_or_refuses(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        decoded = decode(path, 8, 16)
    except DecodeError as exc:
        assert str(exc)
        return
    assert decoded.pixels.shape == (8, 8, 3) and decoded.pixels.dtype == np.uint8
    assert 1 <= max(decoded.thumb_size) <= 16
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()


@FUZZ
@given(data=st.binary(max_size=2048) | magic_then_noise())
def test_arbitrary_bytes_decode_or_raise_decode_error(tmp_path, data) -> None:
    decodes_or_refuses(tmp_path / "fuzz.png", data)


@FUZZ
@given(data=corrupted())
def test_corrupted_images_decode_or_raise_decode_error(tmp_path, data) -> None:
    decodes_or_refuses(tmp_path / "fuzz.jpg", data)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "RGB", "L"])
def test_strip_reduce_gives_exactly_the_pixels_of_a_whole_reduce(mode, monkeypatch) -> None:
    """Huge images are box-reduced in strips to bound memory; the result must not change."""
    rng = np.random.default_rng(7)
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = rng.integers(0, 256, size=(777, 1001, bands), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(-1) if bands == 1 else pixels, mode)
    monkeypatch.setattr(imaging, "STRIP_BYTES", 1001 * bands * 7 * 10)  # 70-row strips
    strips = imaging._reduce(image, 7)
    whole = image.reduce(7)
    assert strips.mode == whole.mode and strips.size == whole.size == (143, 111)
    np.testing.assert_array_equal(np.asarray(strips), np.asarray(whole))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-9))


def test_previews_are_encoded_faster_without_losing_quality() -> None:
    """Previews are encoded at libwebp effort PREVIEW_METHOD (2), thumbnails at THUMB_METHOD
    (4). On real clip art the preview decode() makes is within 0.5 dB of what effort 4 gives,
    and at most 10 % larger."""
    from tests.test_backend import clipart

    files = [f for f in clipart(200) if f.stat().st_size > 30_000][:12]
    assert len(files) == 12
    for path in files:
        decoded = decode(path, 224, 192, 800)
        assert decoded.preview is not None and decoded.preview_size is not None
        image, _ = imaging._open_rgb(path.read_bytes(), 224, 800)
        image.thumbnail((800, 800), Image.Resampling.LANCZOS)
        source = np.asarray(image.convert("RGB"))
        assert image.size == decoded.preview_size
        effort4 = imaging.encode_thumb(image, method=4)
        assert decoded.preview == imaging.encode_thumb(image, method=imaging.PREVIEW_METHOD)
        assert decoded.preview != effort4
        shown = np.asarray(Image.open(io.BytesIO(decoded.preview)).convert("RGB"))
        best = np.asarray(Image.open(io.BytesIO(effort4)).convert("RGB"))
        assert _psnr(source, shown) >= _psnr(source, best) - 0.5, path.name
        assert len(decoded.preview) <= 1.1 * len(effort4), path.name
        assert decoded.thumb == imaging.encode_thumb(_thumb(path), method=4)


def _thumb(path: Path) -> Image.Image:
    image, _ = imaging._open_rgb(path.read_bytes(), 224, 800)
    image.thumbnail((192, 192), Image.Resampling.LANCZOS)
    return image
