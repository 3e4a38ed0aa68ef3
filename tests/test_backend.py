"""One model identity from plan to load: device, precision and backend are settled in the plan,
and the cache namespace follows from them; the OpenVINO backend (the accel extra) matches fp32."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import generator.model.accel as accel
import generator.model.embed as embed
from generator.cli import cli
from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.errors import ModelError
from generator.model.embed import plan_model
from generator.model.int8 import Verdict
from generator.storage.cache import namespace
from generator.types import ModelInfo
from tests.helpers import FakeEmbedder

CLIPART = Path("/usr/share/openclipart/png")


def needs_openvino() -> None:
    """Skip without the accel extra; in `make test`'s OpenVINO leg (DINOCLUST_TEST_ACCEL=1, see
    Makefile), where OpenVINO is installed beside .venv, a failing import fails the test."""
    if os.environ.get("DINOCLUST_TEST_ACCEL") == "1":
        import openvino  # noqa: F401
    else:
        pytest.importorskip("openvino")


class Planned(FakeEmbedder):
    """Stands for the loaded model: it runs with exactly the identity it was planned with."""

    def __init__(self, info: ModelInfo) -> None:
        super().__init__()
        self.info = info


def fake_gpu(monkeypatch, *, torch_sees: bool, bf16: bool = True) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(embed, "_driver_present", lambda: True)  # the driver file is there
    monkeypatch.setattr(embed, "_torch_sees_cuda", lambda: torch_sees)
    monkeypatch.setattr(embed, "_cuda_bf16", lambda: bf16)


def test_auto_builds_on_the_cpu_with_a_warning_when_torch_sees_no_cuda(
    colour_folder, tmp_path, monkeypatch, caplog, fake_models
) -> None:
    driver = tmp_path / "nvidia-version"
    driver.write_text("NVRM version: 550.54\n")
    monkeypatch.setattr(embed, "NVIDIA_DRIVER", driver)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = []
    fake_models(load=lambda w, info, *a: loaded.append(info) or Planned(info), plan=False)
    config = BuildConfig(inputs=(colour_folder,), output=tmp_path / "site", weights="random")
    with caplog.at_level(logging.WARNING, logger="generator.model.embed"):
        result = build_site(config)
    assert result.images == 12 and [info.device for info in loaded] == ["cpu"]
    assert "an NVIDIA driver is installed but torch sees no CUDA device" in caplog.text
    with pytest.raises(ModelError, match="--device cuda was requested but is not available"):
        plan_model("random", "cuda", "auto")


def test_a_precision_fallback_is_planned_so_a_warm_rebuild_embeds_nothing(
    colour_folder, tmp_path, monkeypatch, fake_models
) -> None:
    """A pre-Ampere GPU: bf16 becomes fp16 in the plan, so vectors are written and read under
    the namespace of the precision that ran."""
    fake_gpu(monkeypatch, torch_sees=True, bf16=False)
    info = plan_model("random", "auto", "auto")
    assert (info.device, info.precision, info.backend) == ("cuda", "fp16", "torch")
    assert plan_model("random", "cuda", "bf16").precision == "fp16"
    models: list[Planned] = []
    fake_models(load=lambda w, info, *a: models.append(Planned(info)) or models[-1], plan=False)
    cache = tmp_path / "cache"
    results = []
    for run in range(3):
        config = BuildConfig(
            inputs=(colour_folder,), output=tmp_path / f"s{run}", cache_dir=cache, weights="random"
        )
        results.append(build_site(config))
    assert [r.embedded for r in results] == [12, 0, 0]
    assert results[0].report["model"]["precision"] == "fp16"


def test_the_loaded_model_is_the_planned_one() -> None:
    info = plan_model("random", "cpu", "bf16", backend="torch")
    assert embed.load_embedder("random", info).info == info


def test_openvino_without_the_extra_names_the_install_command(
    colour_folder, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(accel, "openvino_installed", lambda: False)
    with pytest.raises(ModelError) as raised:
        plan_model("random", "cpu", "auto", backend="openvino")
    assert str(raised.value) == (
        '--backend openvino needs OpenVINO, which is not installed: pip install "dinoclust[accel]"'
    )
    assert plan_model("random", "cpu", "bf16").backend == "torch"  # auto: torch without it
    run = CliRunner().invoke(
        cli,
        ["build", str(colour_folder), "-o", str(tmp_path / "site"), "--weights", "random"]
        + ["--backend", "openvino", "--no-cache"],
    )
    assert run.exit_code == 1
    said = "Error: --backend openvino needs OpenVINO, which is not installed: pip install"
    assert f'{said} "dinoclust[accel]"' in run.output
    assert not (tmp_path / "site").exists()


def test_auto_picks_openvino_for_the_cpu_only(monkeypatch) -> None:
    monkeypatch.setattr(accel, "openvino_installed", lambda: True)
    assert plan_model("random", "cpu", "bf16").backend == "openvino"
    assert plan_model("random", "cpu", "fp16").backend == "torch"
    fake_gpu(monkeypatch, torch_sees=True)
    assert plan_model("random", "auto", "auto").backend == "torch"
    with pytest.raises(ModelError, match="--backend openvino runs on the CPU"):
        plan_model("random", "cuda", "auto", backend="openvino")


def test_the_backend_is_in_the_namespace_and_the_provenance() -> None:
    torch_info = FakeEmbedder.info
    openvino = ModelInfo(
        *[getattr(torch_info, f) for f in ("name", "weights", "weights_id")],
        False,
        "cpu",
        "fp32",
        None,
        "openvino",
    )
    assert namespace(openvino) != namespace(torch_info)
    from dataclasses import replace

    assert namespace(replace(torch_info, backend="torch")) == namespace(torch_info)


def clipart(count: int) -> list[Path]:
    if not CLIPART.is_dir():
        pytest.skip("needs Debian's openclipart-png (apt-get install openclipart-png)")
    files = sorted(p for p in CLIPART.rglob("*.png") if p.stat().st_size > 2000)
    return files[:: max(1, len(files) // count)][:count]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.openvino
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_matches_torch_fp32_on_real_images(tmp_path, monkeypatch, precision) -> None:
    needs_openvino()
    from generator.ingest.imaging import decode

    pixels = np.stack([decode(f, 224, 64).pixels for f in clipart(24)])
    reference = embed.load_embedder("random", plan_model("random", "cpu", "fp32", backend="torch"))
    info = plan_model("random", "cpu", precision, backend="openvino")
    first = embed.load_embedder("random", info, cache_dir=tmp_path)
    assert first.info == info and info.backend == "openvino"
    assert cosines(reference(pixels), first(pixels)).min() >= 0.999
    # the conversion is kept in the cache folder: the next load converts nothing
    monkeypatch.setattr(accel, "_converted", lambda *a: pytest.fail("converted again"))
    again = embed.load_embedder("random", info, cache_dir=tmp_path)
    assert np.array_equal(again(pixels[:5]), first(pixels[:5]))


@pytest.mark.openvino
def test_openvino_compiles_each_precision_apart(tmp_path) -> None:
    """OpenVINO's compiled-model cache does not key on the precision: with one cache for both,
    a bf16 build after an fp32 one ran the fp32 blob (slowly). Each precision has its own."""
    needs_openvino()
    from generator.ingest.imaging import decode

    pixels = np.stack([decode(f, 224, 64).pixels for f in clipart(8)])
    runs = {}
    for precision in ("fp32", "bf16"):
        info = plan_model("random", "cpu", precision, backend="openvino")
        runs[precision] = embed.load_embedder("random", info, cache_dir=tmp_path)(pixels)
    compiled = tmp_path / accel.CONVERTED / "compiled"
    assert sorted(p.name for p in compiled.iterdir()) == ["bf16", "fp32"]
    assert all(any((compiled / name).iterdir()) for name in ("bf16", "fp32"))
    if embed.cpu_has_bf16():
        assert not np.array_equal(runs["fp32"], runs["bf16"])  # bf16 really ran in bf16
        assert cosines(runs["fp32"], runs["bf16"]).min() >= 0.999
    else:  # without bf16 units OpenVINO runs the bf16 hint in fp32
        np.testing.assert_array_equal(runs["fp32"], runs["bf16"])


@pytest.mark.openvino
def test_with_the_extra_a_build_runs_openvino_and_converts_once(tmp_path, monkeypatch) -> None:
    """`--backend auto` on the CPU with the extra installed: the report names OpenVINO; the next
    build, with one more image and the same cache, loads the model without converting it again
    and embeds only the new image."""
    needs_openvino()
    photos = tmp_path / "photos"
    photos.mkdir()
    *files, extra = clipart(13)
    for file in files:
        shutil.copy(file, photos / f"{file.parent.name}-{file.name}")
    cache = tmp_path / "cache"

    def build(out: str) -> Path:
        args = ["build", str(photos), "-o", str(tmp_path / out), "--weights", "random"]
        result = CliRunner().invoke(cli, [*args, "--k-max", "3", "--cache-dir", str(cache), "-q"])
        assert result.exit_code == 0, result.output
        return tmp_path / out

    first = build("a")
    model = json.loads((first / "report.json").read_text())["model"]
    assert model["backend"] == "openvino"
    if embed.cpu_has_bf16():
        assert model["precision"] == "bf16"
    elif not embed.cpu_has_vnni():  # int8 is no faster there: auto neither checks nor picks it
        assert model["precision"] == "fp32" and not list(cache.rglob("check.json"))
    else:  # auto's int8 check decides (issue 27): int8 where it holds the floors, else fp32
        (check,) = cache.rglob("check.json")
        holds = Verdict.from_json(check.read_text()).holds
        assert model["precision"] == ("int8" if holds else "fp32")
    shutil.copy(extra, photos / f"{extra.parent.name}-{extra.name}")
    monkeypatch.setattr(accel, "_converted", lambda *a: pytest.fail("converted again"))
    embedded = []
    call = accel.OpenVinoEmbedder.__call__

    def counted(self, pixels: np.ndarray) -> np.ndarray:
        embedded.append(len(pixels))
        return call(self, pixels)

    monkeypatch.setattr(accel.OpenVinoEmbedder, "__call__", counted)
    second = json.loads((build("b") / "report.json").read_text())
    assert second["model"] == model and len(second["images"]) == 13
    assert embedded == [1]


def test_torch_bf16_matches_fp32_on_clipart() -> None:
    from generator.ingest.imaging import decode

    pixels = np.stack([decode(f, 224, 64).pixels for f in clipart(24)])
    fp32 = embed.load_embedder("random", plan_model("random", "cpu", "fp32", backend="torch"))
    bf16 = embed.load_embedder("random", plan_model("random", "cpu", "bf16", backend="torch"))
    assert cosines(fp32(pixels), bf16(pixels)).min() >= 0.999
