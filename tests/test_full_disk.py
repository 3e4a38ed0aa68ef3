"""A disk that fills up, or will not take a file: one message that says what to do, what was
kept, and nothing half-written left behind. On a real full disk (a small tmpfs, where this
process may mount one) and with a real per-process file-size limit (everywhere)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import cli
from generator.errors import no_room
from generator.storage import store
from tests.helpers import FakeEmbedder, make_colour_folder, make_image

FULL = "No space left on device. Free some space there, or choose another place with -o."


@pytest.fixture
def fake_model(monkeypatch) -> FakeEmbedder:
    """Every command's model is the fake embedder: no torch, no weights."""
    model = FakeEmbedder()
    monkeypatch.setattr("generator.model.embed.load_embedder", lambda *a, **k: model)
    monkeypatch.setattr("generator.model.embed.plan_model", lambda *a, **k: FakeEmbedder.info)
    return model


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB file system of its own: room for one site (5 MB, Plotly's 4.7), not two."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(disk)]
    if shutil.which("mount") is None or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("a small tmpfs cannot be mounted here (it needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take all but `leave` bytes of what is left on `disk`."""
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while (free := shutil.disk_usage(disk).free) > leave:
                f.write(b"\0" * min(free - leave, 1 << 20))
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC and not leave
    return filler


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def fails_with(result, message: str) -> None:
    """One line on stderr, exit 1, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert f"Error: {message}\n" in result.stderr


def test_a_full_disk_stops_a_rebuild_and_the_site_there_is_kept(
    fake_model, small_disk, colour_folder
) -> None:
    site = small_disk / "site"
    first = CliRunner().invoke(cli, ["build", str(colour_folder), "-o", str(site), "-q"])
    assert first.exit_code == 0, first.output
    before = files(small_disk)
    result = CliRunner().invoke(
        cli, ["build", str(colour_folder), "-o", str(site), "--title", "again", "-q"]
    )
    fails_with(result, f"Cannot write {site}: {FULL} The site already at {site} is as it was.")
    assert files(small_disk) == before  # nor any staging folder left behind
    assert sorted(p.name for p in small_disk.iterdir()) == ["site"]


@pytest.mark.parametrize("kind", ["folder", "single file", "zip"])
def test_a_disk_that_fills_up_keeps_no_unfinished_site_page_or_zip(
    fake_model, small_disk, colour_folder, tmp_path, kind
) -> None:
    fill(small_disk, leave=512 << 10)  # room for the lock and some files, not for Plotly
    target = small_disk / {"folder": "site", "single file": "page.html", "zip": "site.zip"}[kind]
    args = {
        "folder": ["-o", str(target)],
        "single file": ["-o", str(target), "--single-file"],
        "zip": ["-o", str(tmp_path / "site"), "--zip", str(target)],
    }[kind]
    result = CliRunner().invoke(cli, ["build", str(colour_folder), *args, "-q"])
    if kind == "zip":
        fails_with(
            result,
            f"Cannot write {target}: No space left on device. Free some space there, or choose "
            f"another place with --zip. The site in {tmp_path / 'site'} is built. The unfinished "
            "zip was removed.",
        )
        assert (tmp_path / "site" / "index.html").is_file()
    else:
        what = "page" if kind == "single file" else "site"
        fails_with(result, f"Cannot write {target}: {FULL} The unfinished {what} was removed.")
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def test_a_disk_with_no_room_at_all_says_so_before_any_work(
    fake_model, small_disk, colour_folder
) -> None:
    fill(small_disk)
    site = small_disk / "site"
    result = CliRunner().invoke(cli, ["build", str(colour_folder), "-o", str(site), "-q"])
    fails_with(result, f"Cannot write {site}: {FULL} Nothing was written.")
    assert fake_model.calls == 0
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def test_embed_on_a_full_disk_keeps_its_finished_parts_and_goes_on_from_there(
    fake_model, small_disk, tmp_path, monkeypatch
) -> None:
    """The disk fills while the fifth batch is embedded; once there is room the same command
    embeds only what the finished parts lack, and the store equals one written in one go."""
    photos = make_colour_folder(tmp_path / "photos", per_colour=10)
    monkeypatch.setattr(store, "PART_ROWS", 8)
    out = small_disk / "emb"
    command = ["embed", str(photos), "-o", str(out), "--batch-size", "4", "--no-cache", "-q"]
    calls, embed = [0], FakeEmbedder.__call__

    def filling(self, pixels):
        calls[0] += 1
        if calls[0] == 5:
            fill(small_disk)
        return embed(self, pixels)

    monkeypatch.setattr(FakeEmbedder, "__call__", filling)
    result = CliRunner().invoke(cli, command)
    fails_with(
        result,
        f"Cannot write {out}: {FULL} What {out} held is kept, and so are the parts this run "
        "finished: once there is room, the same command goes on from there.",
    )
    parts = sorted(p.name for p in out.glob("part-*.parquet"))
    assert 1 <= len(parts) <= 2, parts
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [
        ".dinoclust-embeddings"
    ]  # no half-written part

    (small_disk / "filler").unlink()
    again = CliRunner().invoke(cli, command[:-1])
    assert again.exit_code == 0, again.output
    kept = 8 * len(parts)
    assert (
        f"30 rows to {out}/ (30 images, 0 skipped, {30 - kept} newly embedded, {kept} kept from "
        "the last run or the cache)"
    ) in again.stderr
    whole = CliRunner().invoke(cli, [*command[:3], str(tmp_path / "whole"), *command[4:]])
    assert whole.exit_code == 0, whole.output
    assert rows(out) == rows(tmp_path / "whole")


def rows(folder: Path) -> list[tuple]:
    read = store.read_rows_raw(store.open_store(folder))
    return sorted((r.rel, r.sha256, r.vector.tobytes(), r.thumb, r.preview) for r in read)


def test_sort_on_a_full_disk_leaves_nothing_half_sorted(fake_model, small_disk, tmp_path) -> None:
    photos = tmp_path / "photos"
    for i in range(6):  # noisy 1,024 px PNGs, about 3 MB each: they do not fit
        make_image(photos / f"p{i}.png", (40 * i, 90, 200), size=(1024, 1024), noise=120, seed=i)
    out = small_disk / "sorted"
    command = ["sort", str(photos), "-o", str(out), "--mode", "copy", "--k", "2", "-q"]
    result = CliRunner().invoke(cli, command)
    fails_with(result, f"Cannot write {out}: {FULL} The unfinished sorted folder was removed.")
    assert list(small_disk.iterdir()) == []


ROOT = Path(__file__).resolve().parents[1]


def fake_build(photos: Path, site: Path) -> list[str]:
    """The real `dinoclust build` with the fake model, in a process of its own."""
    command = [sys.executable, "-m", "tests.slow_cli", "build", str(photos), "-o", str(site)]
    return [*command, "-q", "--no-cache"]


def run(command: list[str], **options) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_CLI_DELAY": "0"}
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, **options
    )


def one_mib_a_file() -> None:
    """In the child: 1 MiB a file at most, so Plotly (4.7 MB) will not go."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_file_too_large_for_the_destination_is_one_message(colour_folder, tmp_path) -> None:
    """What a FAT32 stick answers past 4 GB (EFBIG), from a real limit on this process."""
    site = tmp_path / "site"
    done = run(fake_build(colour_folder, site), preexec_fn=one_mib_a_file)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr == (
        f"Error: Cannot write {site}: File too large. A file is larger than that file system (or "
        "this process) may write: choose another place with -o. The unfinished site was "
        "removed.\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["photos"]


@pytest.mark.parametrize(
    ("shm", "said"),
    [
        ("size=4k", "No space left on device. Make room there"),
        ("ro", "Read-only file system. Make it writable"),
    ],
)
def test_a_full_or_read_only_dev_shm_is_named_not_taken_for_the_output(
    colour_folder, tmp_path, shm, said
) -> None:
    """Python's multiprocessing keeps its semaphores in /dev/shm (a container's is often 64 MB):
    the decode workers cannot start, and the message says where, though the output has room."""
    site = tmp_path / "site"
    script = f'mount -t tmpfs -o {shm} tmpfs /dev/shm && exec "$@"'
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    probe = subprocess.run([*command, "true"], capture_output=True)
    if shutil.which("unshare") is None or probe.returncode:
        pytest.skip("a private /dev/shm cannot be mounted here (it needs root)")
    done = run([*command, *fake_build(colour_folder, site)])
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"Error: Cannot write /dev/shm: {said} and try again. The unfinished site was removed.\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["photos"]


def test_a_write_that_names_no_file_is_the_outputs_only_if_its_disk_is_full(tmp_path) -> None:
    """A failing write() names no file: tmp_path's disk has room, so it was not the output."""
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert no_room(exc, tmp_path / "site", "-o", "The unfinished site was removed.") == (
        f"Cannot write a file (No space left on device), but not into {tmp_path / 'site'}, whose "
        "file system has room. A temporary or system folder may be the one (TMPDIR, or /dev/shm, "
        "which Python's multiprocessing needs): make room there and try again. The unfinished "
        "site was removed."
    )


def test_a_full_disk_elsewhere_is_named_as_it_is() -> None:
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/var/tmp/torch-cache/x")
    assert no_room(exc, Path("/srv/out/site"), "-o", "The unfinished site was removed.") == (
        "Cannot write /var/tmp/torch-cache/x: No space left on device. Make room there and try "
        "again. The unfinished site was removed."
    )
    read_only = OSError(errno.EROFS, os.strerror(errno.EROFS), "/srv/out/.site.tmp/index.html")
    assert no_room(read_only, Path("/srv/out/site"), "-o", "") == (
        "Cannot write /srv/out/site: Read-only file system. That file system is read-only: "
        "choose another place with -o. "
    )
