"""Stage 1 — discover: exact lists of relative paths, in exact order, from real folders on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from generator.errors import InputError
from generator.ingest.discover import IMAGE_SUFFIXES, Discovery, discover


def touch(root: Path, *rels: str) -> None:
    """Discovery looks at names only, so empty files are enough."""
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def rels(found: Discovery) -> list[str]:
    return [image.rel for image in found.images]


def test_folders_are_walked_recursively_in_a_case_insensitive_sorted_order(tmp_path) -> None:
    touch(
        tmp_path,
        "z.tiff",
        "b.JPG",
        "a.png",
        "A.png",
        "a/x.jpg",
        "Sub/deeper/d.webp",
        "Sub/c.jpeg",
        "sub2/e.gif",
    )
    found = discover([tmp_path])
    assert rels(found) == [
        "a/x.jpg",
        "A.png",
        "a.png",
        "b.JPG",
        "Sub/c.jpeg",
        "Sub/deeper/d.webp",
        "sub2/e.gif",
        "z.tiff",
    ]
    assert [image.path for image in found.images] == [tmp_path / rel for rel in rels(found)]
    assert found.skipped == ()
    assert discover([tmp_path]) == found  # same folder, same answer


def test_every_supported_suffix_is_found_in_any_letter_case(tmp_path) -> None:
    suffixes = ["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "heic", "heif", "hif"]
    suffixes += ["avif", "dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2"]
    assert {f".{suffix}" for suffix in suffixes} == IMAGE_SUFFIXES
    for suffix in suffixes:
        touch(tmp_path, f"lower.{suffix}", f"upper.{suffix.upper()}", f"mixed.{suffix.title()}")
    found = rels(discover([tmp_path]))
    assert found == (
        [f"lower.{s}" for s in sorted(suffixes)]
        + [f"mixed.{s.title()}" for s in sorted(suffixes)]
        + [f"upper.{s.upper()}" for s in sorted(suffixes)]
    )


def test_other_files_inside_folders_are_ignored_without_a_skip_entry(tmp_path) -> None:
    touch(
        tmp_path,
        "keep.jpg",
        "notes.txt",
        "photo.jpg.txt",
        "heic",
        "no_suffix",
        "sidecar.xmp",
        "movie.mp4",
    )
    found = discover([tmp_path])
    assert rels(found) == ["keep.jpg"]
    assert found.skipped == ()


def test_hidden_files_hidden_folders_and_macos_junk_are_ignored(tmp_path) -> None:
    touch(
        tmp_path,
        "visible.jpg",
        ".hidden.jpg",
        "._visible.jpg",
        ".git/objects/x.png",
        ".thumbnails/t.png",
        "__MACOSX/a.jpg",
        "__MACOSX/._a.jpg",
        "album/.DS_Store",
        "album/._b.jpg",
        "album/b.jpg",
        "album/__MACOSX/c.jpg",
    )
    assert rels(discover([tmp_path])) == ["album/b.jpg", "visible.jpg"]


def test_a_folder_named_like_an_image_is_walked_not_taken_as_an_image(tmp_path) -> None:
    touch(tmp_path, "dir.jpg/inside.png", "dir.jpg/deeper.gif/x.bmp", "plain.jpg")
    assert rels(discover([tmp_path])) == [
        "dir.jpg/deeper.gif/x.bmp",
        "dir.jpg/inside.png",
        "plain.jpg",
    ]
    assert rels(discover([tmp_path / "dir.jpg"])) == ["deeper.gif/x.bmp", "inside.png"]


def test_symlinked_folders_are_followed(tmp_path) -> None:
    root, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    touch(root, "own.jpg")
    touch(elsewhere, "e1.png", "sub/e2.png")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert rels(discover([root])) == ["linked/e1.png", "linked/sub/e2.png", "own.jpg"]


def test_a_symlink_loop_neither_hangs_nor_duplicates(tmp_path) -> None:
    root = tmp_path / "photos"
    touch(root, "top.jpg", "sub/inner.png")
    (root / "sub" / "loop").symlink_to("..", target_is_directory=True)
    (root / "self").symlink_to(".", target_is_directory=True)
    (root / "sub" / "deep").mkdir()
    (root / "sub" / "deep" / "up").symlink_to("../..", target_is_directory=True)
    assert rels(discover([root])) == ["sub/inner.png", "top.jpg"]


def test_a_loop_above_the_input_does_not_duplicate_the_input(tmp_path) -> None:
    root = tmp_path / "photos"
    touch(root, "top.jpg")
    (root / "parent").symlink_to("..", target_is_directory=True)  # leads to tmp_path → photos
    assert rels(discover([root])) == ["top.jpg"]


def test_the_same_real_file_reached_twice_is_taken_once(tmp_path) -> None:
    root = tmp_path / "photos"
    touch(root, "a.jpg", "shared/s.png")
    (root / "b_link.jpg").symlink_to(root / "a.jpg")
    (root / "again").symlink_to(root / "shared", target_is_directory=True)
    found = discover([root])
    assert rels(found) == ["a.jpg", "again/s.png"]  # `again` sorts first, so it wins the walk
    assert found.images[0].path == root / "a.jpg"


def test_excluded_folders_are_skipped_even_through_another_path(tmp_path) -> None:
    root = tmp_path / "photos"
    touch(root, "a.jpg", "site/thumbs/t.png", "other/b.png", "other/nested_out/n.png")
    (tmp_path / "alias").symlink_to(root / "other", target_is_directory=True)
    found = discover([root], exclude=[root / "site", tmp_path / "alias" / "nested_out"])
    assert rels(found) == ["a.jpg", "other/b.png"]
    assert rels(discover([root], exclude=[root])) == []


def test_several_inputs_are_prefixed_with_their_folder_names(tmp_path) -> None:
    touch(tmp_path, "cats/c.jpg", "dogs/d.jpg", "dogs/sub/e.png")
    found = discover([tmp_path / "dogs", tmp_path / "cats"])
    assert rels(found) == ["cats/c.jpg", "dogs/d.jpg", "dogs/sub/e.png"]


def test_same_name_inputs_are_told_apart_by_the_shortest_distinguishing_parent(tmp_path) -> None:
    touch(tmp_path, "2023/photos/a.jpg", "2024/photos/a.jpg", "2024/photos/noext", "x/b/c.png")
    found = discover(
        [tmp_path / "2023" / "photos", tmp_path / "2024" / "photos", tmp_path / "x" / "b"]
    )
    assert rels(found) == ["2023/photos/a.jpg", "2024/photos/a.jpg", "b/c.png"]
    assert [image.path for image in found.images] == [
        tmp_path / "2023" / "photos" / "a.jpg",
        tmp_path / "2024" / "photos" / "a.jpg",
        tmp_path / "x" / "b" / "c.png",
    ]
    touch(tmp_path, "p/trip/photos/d.png", "q/trip/photos/e.png")
    found = discover([tmp_path / "p" / "trip" / "photos", tmp_path / "q" / "trip" / "photos"])
    assert rels(found) == ["p/trip/photos/d.png", "q/trip/photos/e.png"]


def test_same_name_file_inputs_get_their_parent_folder(tmp_path) -> None:
    touch(tmp_path, "a/IMG_1.png", "b/IMG_1.png", "c/other.png")
    inputs = [tmp_path / "a" / "IMG_1.png", tmp_path / "b" / "IMG_1.png", tmp_path / "c/other.png"]
    assert rels(discover(inputs)) == ["a/IMG_1.png", "b/IMG_1.png", "other.png"]


def test_an_explicit_image_file_input_keeps_its_own_name(tmp_path) -> None:
    touch(tmp_path, "album/a.jpg", "loose/single.PNG")
    assert rels(discover([tmp_path / "loose" / "single.PNG"])) == ["single.PNG"]
    found = discover([tmp_path / "album", tmp_path / "loose" / "single.PNG"])
    assert rels(found) == ["album/a.jpg", "single.PNG"]


def test_an_explicit_non_image_file_is_listed_as_skipped(tmp_path) -> None:
    touch(tmp_path, "notes.txt", "album/a.jpg")
    found = discover([tmp_path / "notes.txt"])
    assert found.images == ()
    assert [(s.rel, s.reason) for s in found.skipped] == [
        ("notes.txt", "not a supported image type")
    ]
    found = discover([tmp_path / "album", tmp_path / "notes.txt"])
    assert rels(found) == ["album/a.jpg"]
    assert [s.rel for s in found.skipped] == ["notes.txt"]


def test_an_explicit_file_also_found_in_a_folder_input_is_taken_once(tmp_path) -> None:
    touch(tmp_path, "album/a.jpg", "album/b.jpg")
    found = discover([tmp_path / "album", tmp_path / "album" / "b.jpg"])
    assert rels(found) == ["album/a.jpg", "album/b.jpg"]


def test_a_missing_input_raises_input_error_naming_it(tmp_path) -> None:
    touch(tmp_path, "real/a.jpg")
    missing = tmp_path / "no-such-folder"
    with pytest.raises(InputError, match="no-such-folder: no such file or folder"):
        discover([tmp_path / "real", missing])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their permissions")
def test_an_unreadable_folder_is_reported_and_the_rest_is_still_found(tmp_path) -> None:
    touch(tmp_path, "a.jpg", "locked/secret.jpg", "z/b.png")
    locked = tmp_path / "locked"
    locked.chmod(0)
    try:
        found = discover([tmp_path])
    finally:
        locked.chmod(0o755)
    assert rels(found) == ["a.jpg", "z/b.png"]
    assert [(s.rel, s.reason) for s in found.skipped] == [
        ("locked", "folder not readable (Permission denied)")
    ]


def test_unusual_file_names_are_kept_exactly(tmp_path) -> None:
    names = [
        "🐱 cat.png",
        "写真.jpg",
        "日本/猫.JPEG",
        "a b.jpg",
        "a&b.jpg",
        'it\'s "quoted".jpg',
        "<script>alert(1)<\\script>.png",
        "café.webp",
    ]
    touch(tmp_path, *names)
    assert rels(discover([tmp_path])) == [
        "<script>alert(1)<\\script>.png",
        "a b.jpg",
        "a&b.jpg",
        "café.webp",
        'it\'s "quoted".jpg',
        "写真.jpg",
        "日本/猫.JPEG",
        "🐱 cat.png",
    ]


def test_a_folder_that_cannot_be_listed_is_reported_even_when_running_as_root(
    tmp_path, monkeypatch
) -> None:
    touch(tmp_path, "a.jpg", "locked/secret.jpg", "z/b.png")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = discover([tmp_path])
    assert rels(found) == ["a.jpg", "z/b.png"]
    assert [(s.rel, s.reason) for s in found.skipped] == [
        ("locked", "folder not readable (Permission denied)")
    ]


# Names that are not UTF-8, as an old Windows zip unpacks: Shift-JIS from Japanese Windows,
# Latin-1 from western European Windows, and bytes that are neither.
BYTE_NAMES = [
    ("写真（１）.png".encode("cp932"), "写真（１）.png"),
    ("ひらがな カタカナ.jpg".encode("cp932"), "ひらがな カタカナ.jpg"),
    ("crème brûlée.png".encode("latin-1"), "cr\\xe8me br\\xfbl\\xe9e.png"),
    ("Äpfel.png".encode("latin-1"), "\\xc4pfel.png"),
    (b"bad\xff\xfe.png", "bad\\xff\\xfe.png"),
]


@pytest.mark.skipif(os.name == "nt", reason="Windows file names are Unicode already")
def test_names_that_are_not_utf8_are_shown_readably_and_opened_by_their_bytes(tmp_path) -> None:
    root = tmp_path / "zip"
    (root / "旅行".encode("cp932").decode("utf-8", "surrogateescape")).mkdir(parents=True)
    for raw, _ in BYTE_NAMES:
        (root / os.fsdecode(raw)).write_bytes(b"")
    (root / os.fsdecode("旅行/夏.png".encode("cp932"))).write_bytes(b"")
    (root / os.fsdecode(b"caf\xe9")).mkdir()
    (root / os.fsdecode(b"caf\xe9/ok.png")).write_bytes(b"")
    found = discover([root])
    assert sorted(rels(found)) == sorted(
        [shown for _, shown in BYTE_NAMES] + ["旅行/夏.png", "caf\\xe9/ok.png"]
    )
    for image in found.images:
        image.rel.encode("utf-8")  # what report.json and the CSV files are written in
        assert image.path.is_file()  # the real name, bytes and all
    assert {image.rel: image.folder for image in found.images}["旅行/夏.png"] == "旅行"
