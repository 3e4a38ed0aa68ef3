"""The local engine and the mapper: rows in input order, prompt cancelling, clean shutdown."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from generator.commands.build import build_site
from generator.config import BuildConfig
from generator.engines import local
from generator.engines.local import EmbedOptions, LocalEngine
from generator.ingest.discover import discover
from generator.model.embed import LazyEmbedder
from generator.types import no_progress
from tests.helpers import FakeEmbedder, make_colour_folder, make_image


class Boom(FakeEmbedder):
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        raise RuntimeError("model failed")


class SlowDecode:
    """A 50 ms decode that leaves a mark per file: it runs in the decode worker processes, so
    it must be picklable and tell the test through the file system."""

    def __init__(self, marks: Path) -> None:
        self.marks = marks

    def __call__(self, path: Path, thumb_size: int, preview_size: int = 0):
        time.sleep(0.05)
        (self.marks / path.name).touch()
        return REAL_DECODE(path, thumb_size, preview_size)


REAL_DECODE = local._try_decode
# decodes that may run on once the engine stops: the tasks running (one per worker), those the
# process pool has handed on to its call queue (one more than the workers), and those the
# workers took up while the engine was stopping (one round per worker, at most two), each task
# of task_size images (2 for the 40 images below on 2 CPUs)
WORKERS = local.default_workers()
IN_FLIGHT = local.task_size(40, WORKERS) * (4 * WORKERS + 1)


def slow_decodes(tmp_path: Path, monkeypatch) -> Path:
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setattr(local, "_try_decode", SlowDecode(marks))
    return marks


def test_rows_come_in_input_order_with_skips_in_place(tmp_path) -> None:
    photos = make_colour_folder(tmp_path / "photos", per_colour=3)
    (photos / "green" / "broken.png").write_bytes(b"not a png")
    images = discover([photos]).images
    engine = LocalEngine(
        FakeEmbedder(), None, EmbedOptions(thumb_size=64, batch_size=4, preview_size=0)
    )
    rows = list(engine.run(images, no_progress))
    assert [r.rel for r in rows] == [i.rel for i in images]
    broken = [r for r in rows if r.error is not None]
    assert [(r.rel, r.vector, r.thumb) for r in broken] == [("green/broken.png", None, None)]
    good = [r for r in rows if r.error is None]
    assert len(good) == 9 and engine.embedded == 9
    assert all(r.vector.shape == (16,) and r.vector.dtype == np.float32 for r in good)
    assert all(len(r.sha256) == 64 and r.thumb[:4] == b"RIFF" for r in good)
    assert all(max(r.thumb_size) == 64 and r.size == (64, 48) for r in good)


def test_an_error_cancels_the_queued_decodes(tmp_path, monkeypatch) -> None:
    photos = tmp_path / "photos"
    for i in range(40):
        make_image(photos / f"{i:02d}.png", (i * 5, 100, 100))
    marks = slow_decodes(tmp_path, monkeypatch)
    config = BuildConfig(inputs=(photos,), output=tmp_path / "site", batch_size=2)
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="model failed"):
        build_site(config, embedder=Boom())
    # 40 slow decodes would take far longer: the error stopped them (a loose bound, for CI's
    # shared cores; the counts below are the real check)
    assert time.perf_counter() - started < 10.0
    decoded = len(list(marks.iterdir()))
    assert decoded <= 2 + IN_FLIGHT  # the first batch, and those under way
    time.sleep(0.3)
    assert len(list(marks.iterdir())) == decoded  # nothing ran on after the error
    assert not multiprocessing.active_children()  # the decode workers have exited
    assert not list(tmp_path.glob(".site.dinoclust-*"))  # staging removed


def test_the_model_loader_is_shut_down(tmp_path) -> None:
    gate = threading.Event()

    def load() -> FakeEmbedder:
        gate.wait(5)
        return FakeEmbedder()

    lazy = LazyEmbedder(FakeEmbedder.info, load)
    lazy.prefetch()
    assert [t.name for t in threading.enumerate() if t.name.startswith("load-model")]
    lazy.close()
    gate.set()
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name.startswith("load-model")]


def test_a_failure_opening_staging_closes_the_cache_and_the_loader(
    colour_folder, tmp_path, monkeypatch, fake_models
) -> None:
    import generator.commands.stages as stages
    from generator.errors import OutputError
    from generator.storage.cache import EmbeddingCache

    closed = []
    real_close = EmbeddingCache.close
    monkeypatch.setattr(EmbeddingCache, "close", lambda self: (closed.append(1), real_close(self)))
    monkeypatch.setattr(
        stages, "open_staging", lambda output: (_ for _ in ()).throw(OutputError("no room"))
    )
    monkeypatch.setattr(LazyEmbedder, "close", lambda self: closed.append("loader"))
    fake_models(load=lambda *a, **k: pytest.fail("loaded a model"))  # closed before any load
    config = BuildConfig(
        inputs=(colour_folder,), output=tmp_path / "site", cache_dir=tmp_path / "cache"
    )
    with pytest.raises(OutputError, match="no room"):
        build_site(config)
    assert sorted(map(str, closed)) == ["1", "loader"]


def test_ctrl_c_in_the_site_stage_cancels_the_queued_decodes(tmp_path, monkeypatch) -> None:
    """The interrupt arrives while the engine's generator is suspended: closing it cancels."""
    import generator.commands.stages as stages

    photos = tmp_path / "photos"
    for i in range(40):
        make_image(photos / f"{i:02d}.png", (i * 5, 100, 100))
    marks = slow_decodes(tmp_path, monkeypatch)
    real_save = stages.save_thumb

    def interrupted(site, row):
        if row.rel == "01.png":
            raise KeyboardInterrupt
        return real_save(site, row)

    monkeypatch.setattr(stages, "save_thumb", interrupted)
    config = BuildConfig(inputs=(photos,), output=tmp_path / "site", batch_size=1)
    try:
        build_site(config, embedder=FakeEmbedder())
    except KeyboardInterrupt:
        held = sys.exc_info()  # a caller still handling it keeps every frame alive
        seen = len(list(marks.iterdir()))
        time.sleep(0.5)
        assert len(list(marks.iterdir())) == seen <= 2 + 2 * IN_FLIGHT
        del held
    else:
        raise AssertionError("the interrupt did not propagate")
    assert not multiprocessing.active_children()
    assert not [t for t in threading.enumerate() if t.name.startswith("decode")]
    assert not list(tmp_path.glob(".site.dinoclust-*"))


class MarkDecode:
    """The real decode, leaving a mark per file (it runs in the worker processes)."""

    def __init__(self, marks: Path) -> None:
        self.marks = marks

    def __call__(self, path: Path, thumb_size: int, preview_size: int = 0):
        (self.marks / path.name).touch()
        return REAL_DECODE(path, thumb_size, preview_size)


def test_while_the_model_loads_more_images_are_decoded_and_rows_are_the_same(
    tmp_path, monkeypatch
) -> None:
    """While the LazyEmbedder is still loading, LOADING_LOOKAHEAD images (not LOOKAHEAD) are
    decoded ahead, on the cores the load leaves idle; the batches, and the rows, are the same."""
    photos = tmp_path / "photos"
    for i in range(700):
        make_image(photos / f"{i:03d}.png", (i % 250, 100, 100), (40, 30))
    images = discover([photos]).images
    options = EmbedOptions(thumb_size=32, batch_size=32, preview_size=0, workers=2)
    expected = list(LocalEngine(FakeEmbedder(), None, options).run(images, no_progress))
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setattr(local, "_try_decode", MarkDecode(marks))
    gate, after = threading.Event(), []

    def load() -> FakeEmbedder:
        gate.wait(60)
        return FakeEmbedder()

    lazy = LazyEmbedder(FakeEmbedder.info, load, then=lambda: after.append(lazy.loading()))
    rows: list = []
    engine = LocalEngine(lazy, None, options)
    worker = threading.Thread(target=lambda: rows.extend(engine.run(images, no_progress)))
    worker.start()
    seen, still, deadline = -1, 0, time.monotonic() + 60
    while time.monotonic() < deadline and still < 3:  # the decodes sent ahead are all done:
        time.sleep(0.5)  # no new one for 1.5 s (a loaded CI machine pauses the workers)
        now = len(list(marks.iterdir()))
        still = still + 1 if now == seen and now >= local.LOADING_LOOKAHEAD else 0
        seen = now
    assert lazy.loading() and not rows
    # the first batch, then LOADING_LOOKAHEAD more (tasks of 8 images), not LOOKAHEAD more
    assert local.LOADING_LOOKAHEAD <= seen <= local.LOADING_LOOKAHEAD + 32
    gate.set()
    worker.join(60)
    assert len(list(marks.iterdir())) == 700 and after == [False]
    lazy.close()
    assert [(r.rel, r.sha256, r.thumb) for r in rows] == [
        (r.rel, r.sha256, r.thumb) for r in expected
    ]
    assert all(np.array_equal(a.vector, b.vector) for a, b in zip(rows, expected, strict=True))
