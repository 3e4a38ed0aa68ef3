"""The Ray engine (`dinoclust embed --engine ray`) on one local 2-CPU cluster shared by the module.

The same inputs must give the same store whichever engine schedules the batches (clip-retrieval's
distributor test). Kept few and small: each Ray dataset takes a few seconds to start.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.commands.embed import embed_collection
from generator.config import EmbedConfig
from generator.engines import ray as ray_engine
from generator.engines.decode import try_decode
from generator.engines.ray import Given, RayEngine, RayError, RayOptions
from generator.engines.runner import EmbedOptions
from generator.ingest.discover import discover
from generator.types import no_progress
from tests.helpers import FakeEmbedder, make_colour_folder, make_image

ray = pytest.importorskip("ray")

# one local cluster at a time: under pytest-xdist (`--dist loadgroup`) one worker runs them all
pytestmark = [pytest.mark.ray, pytest.mark.timeout(240), pytest.mark.xdist_group("ray")]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def cluster(tmp_path_factory):
    """One local cluster for the module; its workers import this checkout (tests.helpers)."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved) if p)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if saved is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture
def photos(tmp_path) -> Path:
    root = make_colour_folder(tmp_path / "photos", per_colour=3)
    (root / "broken.png").write_bytes(b"not a png")
    return root


def embed(photos: Path, out: Path, engine: str = "ray", embedder=None, **options):
    config = EmbedConfig(inputs=(photos,), output=out, engine=engine, batch_size=4, **options)
    return embed_collection(config, embedder=embedder or FakeEmbedder())


class DiesOnce(FakeEmbedder):
    """The first actor to embed a batch kills its process (no exception, no cleanup), as an
    out-of-memory kill or a lost node would; the actors after it embed normally."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    def __call__(self, pixels):
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)
        return super().__call__(pixels)


def test_the_ray_store_equals_the_local_one_with_an_error_row(photos, tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="generator"):
        ray_result = embed(photos, tmp_path / "ray")
        local_result = embed(photos, tmp_path / "local", engine="local")
    skips = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")]
    # both engines name the file by its path in the store, never the machine's absolute path
    assert skips == ["skipped broken.png: not an image that Pillow can read"] * 2
    by_ray, by_local = pq.read_table(tmp_path / "ray"), pq.read_table(tmp_path / "local")
    assert by_ray.equals(by_local)  # features, thumbnails, sizes, hashes, order
    assert by_ray.schema.metadata == by_local.schema.metadata
    assert (ray_result.rows, ray_result.embedded) == (local_result.rows, 9) == (10, 9)
    rows = by_ray.to_pylist()
    assert [(r["path"], r["error"], r["embedding"]) for r in rows if r["error"]] == [
        ("broken.png", "not an image that Pillow can read", None)
    ]
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == [
        ".dinoclust-embeddings",
        "part-g0001-00000.parquet",
    ]


def test_a_ray_rerun_adds_nothing_and_five_new_files_add_five_rows(photos, tmp_path) -> None:
    store = tmp_path / "emb"
    embed(photos, store)
    first = pq.read_table(store)
    again = embed(photos, store)
    assert (again.embedded, again.kept, again.rows) == (0, 9, 10)
    assert pq.read_table(store).equals(first)
    for i in range(5):
        make_image(photos / "new" / f"n{i}.png", (20 * i, 90, 160), noise=8, seed=i)
    more = embed(photos, store)
    assert (more.embedded, more.kept, more.rows) == (5, 9, 15)
    paths = pq.read_table(store).column("path").to_pylist()
    assert len(paths) == len(set(paths)) == 15
    overwritten = embed(photos, store, overwrite=True)
    assert (overwritten.embedded, overwritten.kept, overwritten.rows) == (14, 0, 15)
    assert [p.name for p in store.glob("part-*.parquet")] == ["part-g0004-00000.parquet"]


def test_an_actor_that_dies_is_restarted_and_every_row_is_written(photos, tmp_path) -> None:
    marker = tmp_path / "died"
    result = embed(photos, tmp_path / "ray", embedder=DiesOnce(marker), workers=1)
    assert marker.is_file()  # an actor did die
    assert int(marker.read_text()) != os.getpid()  # ... on the cluster, not the driver
    assert (result.rows, result.embedded, len(result.skipped)) == (10, 9, 1)
    embed(photos, tmp_path / "local", engine="local")
    assert pq.read_table(tmp_path / "ray").equals(pq.read_table(tmp_path / "local"))


class Broken(FakeEmbedder):
    """A model that fails on every batch (e.g. out of memory on the device)."""

    def __call__(self, pixels):
        raise ValueError("the model ran out of memory")


def test_a_failing_model_is_a_clear_error_that_names_the_batch(photos, tmp_path) -> None:
    start = time.monotonic()
    with pytest.raises(RayError) as raised:
        embed(photos, tmp_path / "emb", embedder=Broken(), workers=1)
    assert time.monotonic() - start < 120
    message = str(raised.value)
    named = re.match(  # the first batch to fail: batches reach the model as they are decoded
        r"The Ray cluster could not embed the images: ValueError: the model ran out of memory "
        r"\(in the batch of ([34]) files from (\S+) to (\S+)\)\. The finished parts are kept",
        message,
    )
    assert named, message
    files = sorted(str(path) for path in photos.rglob("*.png"))
    first, last = files.index(named[2]), files.index(named[3])
    assert last - first + 1 == int(named[1])  # its first and last files, in input order
    assert message.endswith("/tmp/ray/session_latest/logs).")
    assert "Traceback" not in message
    assert list((tmp_path / "emb").glob("part-*")) == []


def test_an_unreachable_address_fails_fast_with_what_to_change(photos, tmp_path) -> None:
    start = time.monotonic()
    run = CliRunner().invoke(
        cli,
        ["embed", str(photos), "-o", str(tmp_path / "emb"), "--engine", "ray"]
        + ["--ray-address", "127.0.0.1:9", "--weights", "random"],
    )
    assert time.monotonic() - start < 60
    assert run.exit_code == 1, run.output
    assert run.output.splitlines()[-1] == (
        "Error: --ray-address 127.0.0.1:9: cannot reach a Ray cluster there (Connection refused). "
        "Check the address that `ray start --head` printed (host:6379, or ray://host:10001 for "
        "Ray Client), that the port is open from here, or leave --ray-address out to start a "
        "local cluster."
    )
    assert not (tmp_path / "emb").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"workers": 2},
            "--workers 2 asks for 2 CPUs, but the Ray cluster has 2, and Ray Data needs at "
            "least one more for reading and writing blocks. Use --workers 1 or fewer, or add "
            "nodes to the cluster.",
        ),
        (
            {"gpus_per_worker": 1.0},
            "--workers 1 with --gpus-per-worker 1 asks for 1 GPUs, but the Ray cluster has 0. Use "
            "fewer workers, a smaller --gpus-per-worker (e.g. 0.5 puts two actors on one GPU), "
            "or 0 for CPUs only.",
        ),
    ],
)
def test_a_request_the_cluster_can_never_meet_fails_at_once(
    photos, tmp_path, options, message
) -> None:
    start = time.monotonic()
    with pytest.raises(RayError) as raised:
        embed(photos, tmp_path / "emb", **options)
    assert str(raised.value) == message
    assert time.monotonic() - start < 60
    assert list((tmp_path / "emb").glob("part-*")) == []


@pytest.mark.parametrize("cpus", [1, 0])
def test_a_cluster_without_a_cpu_to_spare_is_told_to_grow(monkeypatch, cpus) -> None:
    """With one CPU (or none) no --workers can fit: the advice is to add nodes, not "Use
    --workers 1 or fewer", which asks for what was just refused."""
    import ray

    from generator.engines.ray import RayOptions, check_resources

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": float(cpus)})
    with pytest.raises(RayError) as raised:
        check_resources(RayOptions())
    assert str(raised.value) == (
        f"--workers 1 asks for 1 CPUs, but the Ray cluster has {cpus}, and Ray Data needs at "
        "least one more for reading and writing blocks. Add nodes to the cluster."
    )


class Timed:
    """Appends `kind pid start end` per call to a log file: the calls run on the cluster's
    workers, so the test hears of them through the file system."""

    def __init__(self, log: Path, seconds: float) -> None:
        self.log, self.seconds = log, seconds

    def timed(self, kind: str, call):
        start = time.time()
        time.sleep(self.seconds)
        result = call()
        with self.log.open("a") as f:
            f.write(f"{kind} {os.getpid()} {start} {time.time()}\n")
        return result


class SlowDecode(Timed):
    """The real decode, and `seconds` more per file."""

    def __call__(self, path: Path, thumb_size: int, preview_size: int = 0):
        return self.timed("decode", lambda: try_decode(path, thumb_size, preview_size))


class SlowModel(FakeEmbedder):
    """The fake model, and `seconds` more per batch; notes when an actor has it loaded."""

    def __init__(self, log: Path, seconds: float) -> None:
        super().__init__()
        self.clock = Timed(log, seconds)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        with self.clock.log.open("a") as f:
            f.write(f"loaded {os.getpid()} {time.time()} {time.time()}\n")

    def __call__(self, pixels):
        return self.clock.timed("model", lambda: FakeEmbedder.__call__(self, pixels))


def test_two_decode_tasks_keep_the_model_actor_busy(tmp_path, monkeypatch) -> None:
    """A model that takes 0.4 s a batch of 4, and a decode that takes 0.05 s a file, 0.2 s a
    batch: with decoding inside the actor the model would be busy 0.4 / 0.6 = 67 % of the time;
    with decoding as a stage before it, of up to 2 tasks (half a CPU each), it is busy >= 80 %
    of the map stage, Ray's overheads and the first batch's wait included. (Ray starts the
    second decode task only when the first falls behind: backpressure.)"""
    photos = tmp_path / "photos"
    for i in range(48):
        make_image(photos / f"{i:02d}.png", (i * 5, 100, 160), noise=8, seed=i)
    images = discover([photos]).images
    log = tmp_path / "calls.log"
    monkeypatch.setattr(ray_engine, "DECODE", SlowDecode(log, 0.05))
    engine = RayEngine(
        FakeEmbedder.info,
        Given(SlowModel(log, 0.4)),
        EmbedOptions(thumb_size=64, batch_size=4, preview_size=0),
        RayOptions(workers=1, decode_cpus=0.5),
    )
    rows = list(engine.run(images, no_progress))
    assert [row.rel for row in rows] == [image.rel for image in images]
    assert engine.embedded == 48
    calls = [line.split() for line in log.read_text().splitlines()]
    model = [(float(a), float(b)) for kind, pid, a, b in calls if kind == "model"]
    actor = {pid for kind, pid, _, _ in calls if kind == "model"}
    assert len(model) == 12 and len(actor) == 1
    decodes = sorted((float(a), float(b)) for kind, _, a, b in calls if kind == "decode")
    loaded = max(float(a) for kind, pid, a, _ in calls if kind == "loaded" and pid in actor)
    # the map stage: from when both stages are up (the actor's model loaded, the first decode
    # task started; Ray starts their processes) to the last batch out of the model
    wall = max(end for _, end in model) - max(loaded, decodes[0][0])
    busy = sum(end - start for start, end in model) / wall
    print(f"model actor busy {busy:.0%} of {wall:.2f} s")
    assert busy >= 0.8, f"the model actor was busy {busy:.0%} of the run"
    assert len(decodes) == 48
    at_once = max(sum(s <= start < e for s, e in decodes) for start, _ in decodes)
    assert 1 <= at_once <= 2  # never more decode tasks than the CPUs the actor leaves allow


class ElsewhereModel(FakeEmbedder):
    """On the cluster it says it runs on CUDA in bf16 with OpenVINO: what a GPU worker settles
    when the driver, on a CPU, planned fp32 with torch."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.info = replace(self.info, device="cuda", precision="bf16", backend="openvino")


def test_the_store_records_the_model_the_actors_ran(photos, tmp_path) -> None:
    store = tmp_path / "emb"
    model = ElsewhereModel()
    assert (model.info.device, model.info.precision, model.info.backend) == ("cpu", "fp32", "torch")
    first = embed(photos, store, embedder=model)
    assert (first.rows, first.embedded) == (10, 9)
    meta = {k.decode(): v.decode() for k, v in pq.read_table(store).schema.metadata.items()}
    ran = {k: meta[f"dinoclust.{k}"] for k in ("device", "precision", "backend")}
    assert ran == {"device": "cuda", "precision": "bf16", "backend": "openvino"}
    again = embed(photos, store, embedder=ElsewhereModel())  # planned on the cluster: kept
    assert (again.embedded, again.kept, again.rows) == (0, 9, 10)


class SettlesOnCall(FakeEmbedder):
    """Settles its precision only once it runs (as a model that loads lazily does): the plan
    asked of the cluster still says fp32, the batches say bf16."""

    def __call__(self, pixels):
        self.info = replace(self.info, precision="bf16")
        return super().__call__(pixels)


def test_the_store_records_what_the_batches_ran_over_the_plan(photos, tmp_path) -> None:
    embed(photos, tmp_path / "emb", embedder=SettlesOnCall())
    meta = pq.read_table(tmp_path / "emb").schema.metadata
    assert (meta[b"dinoclust.precision"], meta[b"dinoclust.device"]) == (b"bf16", b"cpu")


def test_the_actors_model_is_planned_and_loaded_with_the_cache_folder(tmp_path, monkeypatch):
    """The loader that travels to the actors carries --cache-dir to plan_model and
    load_embedder (OpenVINO's conversion, the int8 model and its check are kept there), where
    the actor's node sees that folder."""
    import generator.model.embed as seam

    seen = []
    monkeypatch.setattr(seam, "plan_model", lambda *a: seen.append(("plan", a[-1])) or "info")
    monkeypatch.setattr(seam, "load_embedder", lambda *a: seen.append(("load", a[-1])))
    loader = ray_engine.ModelLoader("random", "cpu", "fp32", 0, "openvino", tmp_path)
    loader()
    assert seen == [("plan", tmp_path), ("load", tmp_path)]
    seen.clear()
    elsewhere = replace(loader, cache_dir=tmp_path / "not-on-this-node")
    elsewhere()
    assert seen == [("plan", None), ("load", None)]


@pytest.mark.openvino
def test_ray_actors_keep_openvinos_conversion_in_the_cache_folder(photos, tmp_path) -> None:
    """On a local cluster the actors convert the model into the driver's --cache-dir, once: a
    second embed converts nothing (the folder's files are the same)."""
    from generator.model import accel
    from tests.test_backend import needs_openvino

    needs_openvino()
    cache = tmp_path / "cache"
    args = ["embed", str(photos), "--engine", "ray", "--workers", "1", "--weights", "random"]
    args += ["--backend", "openvino", "--precision", "fp32", "--cache-dir", str(cache)]
    first = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "one")])
    assert first.exit_code == 0, first.output
    converted = sorted((cache / accel.CONVERTED).glob("*/model.xml"))
    assert len(converted) == 1
    compiled = cache / accel.CONVERTED / "compiled" / "fp32"
    assert any(compiled.iterdir())  # OpenVINO's compiled-model cache, on the actor
    kept = {p: p.stat().st_mtime_ns for p in converted[0].parent.iterdir()}
    again = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "two"), "--overwrite"])
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in converted[0].parent.iterdir()} == kept
