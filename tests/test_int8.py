"""`--precision int8` on the CPU (OpenVINO + NNCF, the accel extra): within the floors against
fp32, never mixed with another precision in the cache, and chosen by `auto` only on CPUs with
int8 (VNNI) units but no bf16 units, where the bundled check holds the floors."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import generator.model.accel as accel
import generator.model.embed as embed
import generator.model.int8 as int8
from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.errors import ModelError
from generator.model.embed import plan_model
from generator.model.int8 import Verdict, compare
from generator.storage.cache import namespace
from generator.storage.store import META_PRECISION, model_metadata
from tests.helpers import FakeEmbedder
from tests.test_backend import Planned, clipart, needs_openvino

AVX2 = "flags\t\t: fpu sse sse2 avx avx2 fma f16c\n"  # an older laptop or server (EPYC Zen 3)
AVX512_VNNI = "flags\t\t: fpu avx2 avx512f avx512_vnni\n"  # Xeon (Cascade Lake, Ice Lake)
AVX_VNNI = "flags\t\t: fpu avx2 avx_vnni\n"  # a laptop (Core 12th generation on)
AVX512_BF16 = "flags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16\n"  # EPYC (Zen 4)
AMX = "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_int8 amx_tile\n"  # Xeon (SPR)
HOLDS = Verdict(0.995, {k: 0.98 for k in range(2, 11)})
MISSES = Verdict(0.995, {**{k: 0.98 for k in range(2, 11)}, 5: 0.6})


def cpu(monkeypatch, tmp_path: Path, flags: str) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\n{flags}")
    monkeypatch.setattr(embed, "CPUINFO", info)


def accel_extra(monkeypatch, verdict: Verdict | None, installed: bool = True) -> list[str]:
    """OpenVINO and NNCF installed (or not), and the bundled check's verdict; the checks run
    are listed."""
    checked: list[str] = []
    monkeypatch.setattr(accel, "openvino_installed", lambda: installed)
    monkeypatch.setattr(int8, "nncf_installed", lambda: installed)
    monkeypatch.setattr(
        accel, "int8_verdict", lambda w, info, *a: checked.append(info.weights_id) or verdict
    )
    return checked


@pytest.mark.parametrize(
    ("flags", "installed", "verdict", "expected"),
    [
        (AMX, True, HOLDS, ("bf16", "openvino")),
        (AVX512_BF16, True, HOLDS, ("bf16", "openvino")),
        (AVX512_BF16, False, None, ("bf16", "torch")),
        (AVX512_VNNI, True, HOLDS, ("int8", "openvino")),
        (AVX_VNNI, True, HOLDS, ("int8", "openvino")),
        (AVX512_VNNI, True, MISSES, ("fp32", "openvino")),
        (AVX512_VNNI, False, None, ("fp32", "torch")),
        (AVX2, True, HOLDS, ("fp32", "openvino")),  # no VNNI: int8 is no faster there
        (AVX2, False, None, ("fp32", "torch")),
    ],
)
def test_auto_chooses_by_the_cpu_flags(
    monkeypatch, tmp_path, flags, installed, verdict, expected
) -> None:
    cpu(monkeypatch, tmp_path, flags)
    checked = accel_extra(monkeypatch, verdict, installed)
    info = plan_model("random", "cpu", "auto")
    assert (info.precision, info.backend) == expected
    # the check runs only where int8 could be chosen: VNNI but no bf16 units, the extra installed
    assert checked == (["random:0"] if flags in (AVX512_VNNI, AVX_VNNI) and installed else [])


def test_auto_says_why_with_v_and_once_that_int8_is_faster(monkeypatch, tmp_path, caplog) -> None:
    cpu(monkeypatch, tmp_path, AVX512_VNNI)
    accel_extra(monkeypatch, MISSES)
    monkeypatch.setattr(embed, "_said_int8_faster", [])
    with caplog.at_level(logging.INFO, logger="generator.model.embed"):
        for _ in range(2):
            assert plan_model("random", "cpu", "auto").precision == "fp32"
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    said = (
        "precision auto: fp32, as int8 misses the floors: on the check set (48 bundled clip-art "
        "images, 80 generated in 10 groups) int8 keeps cosine >= 0.9950 to fp32 (floor 0.99) "
        "and ARI >= 0.600 at k=5 (floor 0.95)"
    )
    assert infos == [said, said]
    assert len(warnings) == 1 and "--precision int8 is about twice as fast" in warnings[0]
    caplog.clear()
    accel_extra(monkeypatch, HOLDS)
    with caplog.at_level(logging.INFO, logger="generator.model.embed"):
        assert plan_model("random", "cpu", "auto").precision == "int8"
    assert caplog.messages == [
        "precision auto: int8, as this CPU has no bf16 units and on the check set (48 bundled "
        "clip-art images, 80 generated in 10 groups) int8 keeps cosine >= 0.9950 to fp32 "
        "(floor 0.99) and ARI >= 0.980 at k=2 (floor 0.95)"
    ]


def test_auto_stays_fp32_without_vnni_and_says_why_without_a_warning(
    monkeypatch, tmp_path, caplog
) -> None:
    """On an AVX2-only CPU OpenVINO's int8 ran at 0.91x its fp32 (docs/performance.md): auto
    neither quantises nor checks there, and does not say that int8 is faster."""
    cpu(monkeypatch, tmp_path, AVX2)
    checked = accel_extra(monkeypatch, HOLDS)
    monkeypatch.setattr(embed, "_said_int8_faster", [])
    with caplog.at_level(logging.INFO, logger="generator.model.embed"):
        info = plan_model("random", "cpu", "auto", cache_dir=tmp_path / "cache")
    assert (info.precision, info.backend, checked) == ("fp32", "openvino", [])
    assert caplog.messages == [
        "precision auto: fp32 (no bf16 or VNNI units: int8 runs no faster on this CPU)"
    ]
    assert not (tmp_path / "cache").exists()
    assert plan_model("random", "cpu", "int8").precision == "int8"  # asked for: still runs


def test_auto_keeps_bf16_and_the_gpu_and_a_named_backend_torch(monkeypatch, tmp_path) -> None:
    cpu(monkeypatch, tmp_path, AVX512_VNNI)
    checked = accel_extra(monkeypatch, HOLDS)
    assert plan_model("random", "cpu", "auto", backend="torch").precision == "fp32"
    assert plan_model("random", "cpu", "fp32").precision == "fp32"  # asked for: kept
    assert checked == []


def test_int8_names_what_it_needs(monkeypatch) -> None:
    accel_extra(monkeypatch, HOLDS, installed=False)
    with pytest.raises(ModelError) as raised:
        plan_model("random", "cpu", "int8")
    assert str(raised.value) == (
        "--precision int8 needs OpenVINO and NNCF, which are not installed: "
        'pip install "dinoclust[accel]" (OpenVINO and NNCF)'
    )
    accel_extra(monkeypatch, HOLDS)
    with pytest.raises(ModelError, match=r"--precision int8 runs on OpenVINO, not --backend torch"):
        plan_model("random", "cpu", "int8", backend="torch")
    monkeypatch.setattr(embed, "_apple_silicon", lambda: True)  # where --device mps can be
    with pytest.raises(ModelError, match=r"--precision int8 runs on the CPU \(got --device mps\)"):
        plan_model("random", "mps", "int8")
    assert plan_model("random", "cpu", "int8").backend == "openvino"


def test_the_cache_never_mixes_precisions(colour_folder, tmp_path, monkeypatch) -> None:
    """fp32, int8, bf16 and int8 again into one cache: each precision embeds every image once,
    and reads back only its own vectors; the store metadata and the page name the precision."""
    infos = {p: replace(FakeEmbedder.info, precision=p) for p in ("fp32", "bf16", "int8")}
    assert len({namespace(i) for i in infos.values()}) == 3
    assert model_metadata(infos["int8"], 128, None)[META_PRECISION] == "int8"
    scale = {"fp32": 1.0, "bf16": 1.01, "int8": 1.02}  # each precision's vectors differ a little

    class Scaled(Planned):
        def __call__(self, pixels: np.ndarray) -> np.ndarray:
            return super().__call__(pixels) * scale[self.info.precision]

    cache, results = tmp_path / "cache", {}
    for run, precision in enumerate(("fp32", "int8", "bf16", "int8")):
        info = infos[precision]
        monkeypatch.setattr(embed, "plan_model", lambda *a, info=info, **k: info)
        monkeypatch.setattr(embed, "load_embedder", lambda w, info, *a: Scaled(info))
        site = tmp_path / f"s{run}"
        config = BuildConfig(inputs=(colour_folder,), output=site, cache_dir=cache)
        results[run] = build_site(replace(config, weights="random", export_embeddings=True))
    assert [results[r].embedded for r in range(4)] == [12, 12, 12, 0]
    assert [results[r].report["model"]["precision"] for r in range(4)] == [
        "fp32",
        "int8",
        "bf16",
        "int8",
    ]
    page = (tmp_path / "s1" / "index.html").read_text(encoding="utf-8")
    assert "<td>int8</td>" in page  # the provenance line
    vectors = [np.load(tmp_path / f"s{run}" / "embeddings.npy") for run in range(4)]
    assert np.allclose(vectors[1], vectors[0] * 1.02, rtol=1e-6)  # int8's own, not fp32's
    assert np.allclose(vectors[2], vectors[0] * 1.01, rtol=1e-6)
    assert np.array_equal(vectors[3], vectors[1])  # read back from int8's namespace


@pytest.mark.openvino
def test_int8_holds_the_floors_on_test_images(tmp_path) -> None:
    """Random weights (no hub here): 96 clip-art pictures that are not the bundled set, each
    within cosine 0.99 of torch fp32, and the check set's 80 grouped images, whose K-means
    labels stay within ARI 0.95 of fp32's for every k. ARI is fragile with random weights: on
    another seed's groups int8 fell to 0.45 at k=4 (two groups about equally near), and on the
    clip art even noise at cosine 0.99994 moves it (README, int8). NNCF with SmoothQuant fails
    this test (ARI 0.80 at k=4, cosine 0.93)."""
    needs_openvino()
    pytest.importorskip("nncf")
    from generator.ingest.imaging import decode

    photos = np.stack([decode(f, 224, 64).pixels for f in clipart(96)])
    pixels = np.concatenate([photos, int8.grouped_pixels()])
    fp32 = embed.load_embedder("random", plan_model("random", "cpu", "fp32", backend="torch"))
    info = plan_model("random", "cpu", "int8")
    quantised = embed.load_embedder("random", info, cache_dir=tmp_path)
    assert (quantised.info.precision, quantised.info.backend) == ("int8", "openvino")
    reference, features = fp32(pixels), quantised(pixels)
    assert not np.allclose(reference, features, atol=1e-3)  # int8 really ran
    verdict = compare(reference, features, grouped=len(photos))
    assert verdict.min_cosine >= int8.MIN_COSINE, verdict
    assert sorted(verdict.ari) == list(range(2, 11))
    assert min(verdict.ari.values()) >= int8.MIN_ARI, verdict


@pytest.mark.openvino
def test_auto_checks_int8_once_and_keeps_the_verdict(tmp_path, monkeypatch) -> None:
    """A CPU without bf16 units, the extra installed: auto quantises, checks on the bundled set
    and keeps both in the cache folder; the next plan reads the verdict and quantises nothing."""
    needs_openvino()
    pytest.importorskip("nncf")
    cpu(monkeypatch, tmp_path, AVX512_VNNI)
    cache = tmp_path / "cache"
    info = plan_model("random", "cpu", "auto", cache_dir=cache)
    folder = accel.int8_folder(cache, info)
    verdict = Verdict.from_json((folder / "check.json").read_text())
    assert info.precision == ("int8" if verdict.holds else "fp32")
    assert (folder / "model.xml").is_file()
    monkeypatch.setattr(int8, "quantise", lambda *a: pytest.fail("quantised again"))
    monkeypatch.setattr(accel, "_converted", lambda *a: pytest.fail("converted again"))
    assert plan_model("random", "cpu", "auto", cache_dir=cache) == info
    if info.precision == "int8":
        loaded = embed.load_embedder("random", info, cache_dir=cache)
        assert loaded(int8.check_pixels()[:3]).shape == (3, 384)


def test_two_writers_of_one_verdict_each_write_their_own_temporary_file(tmp_path) -> None:
    """Two builds checking int8 at once: the second finishes while the first is still writing.
    Both succeed, the last swap wins, and no temporary file is left (a fixed name, as check.json
    had, made the first build's swap fail with FileNotFoundError)."""
    from generator.model.export import write_atomic

    saved = tmp_path / "int8" / "check.json"

    def first(tmp: Path) -> None:
        tmp.write_text("first", encoding="utf-8")
        write_atomic(saved, lambda other: other.write_text("second", encoding="utf-8"))
        assert saved.read_text(encoding="utf-8") == "second"

    write_atomic(saved, first)
    assert saved.read_text(encoding="utf-8") == "first"
    assert [p.name for p in saved.parent.iterdir()] == ["check.json"]
