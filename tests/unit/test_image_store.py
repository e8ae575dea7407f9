"""The image cache: hit without rebuilding, atomic builds, dead builds cleaned, one build at a time.

A fake Builder stands in for debootstrap (the real build is exercised by `make image` and
test_image_boot.py); everything around it (lock, temp folder, rename, manifest) is the real code.
"""

from __future__ import annotations

import json
import threading
import urllib.error
from pathlib import Path

import pytest
from helpers.imagefakes import FakeBuilder

from sevkit.errors import ImageError, InputError
from sevkit.image import Recipe, ensure_image, find_image
from sevkit.image import build as build_mod
from sevkit.image import store as store_mod
from sevkit.image.build import mounts_under, preflight


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeBuilder]:
    FakeBuilder.calls, FakeBuilder.fail, FakeBuilder.delay = 0, None, 0.0
    monkeypatch.setattr(store_mod, "Builder", FakeBuilder)
    monkeypatch.setattr(store_mod, "preflight", lambda *a, **k: None)
    return FakeBuilder


def test_build_then_cache_hit_without_rebuilding(tmp_path: Path, fake: type[FakeBuilder]) -> None:
    recipe = Recipe()
    assert find_image(cache_dir=tmp_path) is None
    image = ensure_image(cache_dir=tmp_path)
    assert fake.calls == 1
    assert image.root == tmp_path / recipe.name and image.recipe_hash == recipe.hash
    assert image.kernel_version == "6.12.117+deb13-amd64" and image.suite == "trixie"
    assert image.append == "root=LABEL=sevroot ro console=ttyS0,115200"
    manifest = json.loads((image.root / "image.json").read_text())
    assert manifest["sizes"] == {"disk": 1004, "kernel": 0x3000, "initrd": 102}
    assert manifest["mirror"] == "http://deb.debian.org/debian" and manifest["build_seconds"] >= 0
    assert manifest["configfs_tsm"] is True                 # 6.12 >= 6.7
    assert (image.root / "build.log").read_text() == "fake build log\n"
    again = ensure_image(cache_dir=tmp_path)
    assert fake.calls == 1 and again == image
    assert find_image(cache_dir=tmp_path) == image
    assert [p.name for p in tmp_path.glob(".*tmp-*")] == []


def test_env_var_chooses_the_store(tmp_path: Path, fake: type[FakeBuilder], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEVKIT_CACHE_DIR", str(tmp_path))
    image = ensure_image()
    assert image.root.parent == tmp_path / "images"


def test_a_different_recipe_is_a_miss(tmp_path: Path, fake: type[FakeBuilder]) -> None:
    ensure_image(cache_dir=tmp_path)
    assert find_image(suite="bookworm", cache_dir=tmp_path) is None
    assert find_image(mirror="http://ftp.de.debian.org/debian", cache_dir=tmp_path) is None


def test_a_damaged_image_counts_as_absent_and_is_rebuilt(tmp_path: Path, fake: type[FakeBuilder]) -> None:
    image = ensure_image(cache_dir=tmp_path)
    with open(image.disk, "ab") as fh:                  # size no longer matches the manifest
        fh.write(b"x")
    assert find_image(cache_dir=tmp_path) is None
    rebuilt = ensure_image(cache_dir=tmp_path)
    assert fake.calls == 2 and rebuilt.disk.stat().st_size == 1004
    (rebuilt.root / "image.json").write_text("{broken")
    assert find_image(cache_dir=tmp_path) is None


def test_a_leftover_temp_folder_is_ignored_then_cleaned(tmp_path: Path, fake: type[FakeBuilder]) -> None:
    recipe = Recipe()
    dead = tmp_path / f".{recipe.name}.tmp-99999-dead00"
    (dead / "rootfs" / "etc").mkdir(parents=True)
    (dead / "disk.qcow2").write_bytes(b"QFI\xfb half written")
    assert find_image(cache_dir=tmp_path) is None       # a half-built image is never used
    ensure_image(cache_dir=tmp_path)
    assert not dead.exists()
    assert fake.calls == 1


def test_a_failed_build_leaves_no_image_and_keeps_its_log(tmp_path: Path, fake: type[FakeBuilder]) -> None:
    fake.fail = "image build step debootstrap failed (exit 1)"
    with pytest.raises(ImageError, match="debootstrap failed"):
        ensure_image(cache_dir=tmp_path)
    recipe = Recipe()
    assert not (tmp_path / recipe.name).exists()
    assert list(tmp_path.glob(".*tmp-*")) == []
    logs = list((tmp_path / "logs").glob(f"{recipe.name}-*.log"))
    assert len(logs) == 1 and logs[0].read_text() == "fake build log\n"


def test_concurrent_builders_build_once(tmp_path: Path, fake: type[FakeBuilder]) -> None:
    fake.delay = 0.5
    results: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(ensure_image(cache_dir=tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(results) == 3
    assert fake.calls == 1
    assert results[0] == results[1] == results[2]


# -- preflight: one clear line each ------------------------------------------------------------------

def test_not_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_mod.os, "geteuid", lambda: 1000)
    with pytest.raises(ImageError, match="needs root") as info:
        preflight(Recipe(), tmp_path, check_mirror=False)
    assert "\n" not in str(info.value)


def test_debootstrap_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_mod.os, "geteuid", lambda: 0)
    real = build_mod.shutil.which
    monkeypatch.setattr(build_mod.shutil, "which", lambda t: None if t == "debootstrap" else real(t))
    with pytest.raises(ImageError, match="debootstrap not found: apt-get install debootstrap"):
        preflight(Recipe(), tmp_path, check_mirror=False)


def test_no_disk_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(build_mod.shutil, "which", lambda t: "/usr/bin/" + t)
    monkeypatch.setattr(build_mod.shutil, "disk_usage", lambda p: type("U", (), {"free": 100 << 20})())
    with pytest.raises(ImageError, match=r"not enough disk space .*: 100 MiB free"):
        preflight(Recipe(), tmp_path, check_mirror=False)


def test_unknown_suite_for_this_debootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(build_mod.shutil, "which", lambda t: "/usr/bin/" + t)
    (tmp_path / "scripts").mkdir()
    monkeypatch.setenv("DEBOOTSTRAP_DIR", str(tmp_path))
    with pytest.raises(ImageError, match="does not know suite 'trixie'"):
        preflight(Recipe(), tmp_path / "store", check_mirror=False)


def test_mirror_unreachable(tmp_path: Path) -> None:
    recipe = Recipe(mirror="http://127.0.0.1:9/debian")      # discard port: connection refused
    with pytest.raises(ImageError, match=r"mirror http://127.0.0.1:9/debian unreachable") as info:
        build_mod.check_mirror_reachable(recipe, timeout=5)
    assert "\n" not in str(info.value)


def test_mirror_without_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_found(url: str, timeout: float) -> None:
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
    monkeypatch.setattr(build_mod.urllib.request, "urlopen", not_found)
    with pytest.raises(ImageError, match="has no suite 'sid2'"):
        build_mod.check_mirror_reachable(Recipe(suite="sid2"))


def test_mounts_under_finds_nothing_in_a_plain_folder(tmp_path: Path) -> None:
    assert mounts_under(tmp_path) == []
    assert Path("/proc") in mounts_under(Path("/proc"))


def test_prune_keeps_current_images_and_removes_old_and_dead(tmp_path: Path, fake: type[FakeBuilder]) -> None:
    current = ensure_image(cache_dir=tmp_path)
    old = tmp_path / "trixie-0123456789abcdef"
    (old / "x").mkdir(parents=True)
    dead = tmp_path / ".bookworm-0123456789abcdef.tmp-1-abc"
    dead.mkdir()
    for folder in (old, dead):      # what the store's own build folders carry
        (folder / store_mod.MARKER).write_text(store_mod.MARKER_TEXT)
    other = tmp_path / "not-an-image"
    other.mkdir()
    removed = store_mod.prune(tmp_path)
    assert sorted(removed) == sorted([old, dead])
    assert current.root.is_dir() and other.is_dir() and (tmp_path / "logs").is_dir()
    assert find_image(cache_dir=tmp_path) == current


def test_prune_deletes_only_what_carries_the_marker(tmp_path: Path) -> None:
    """Issue 10 item 2, the original input: a scratch folder named like an image
    (`notes-0123456789abcdef/` holding a user's file) was deleted. Also a symlink named like an
    image pointing at a user's folder, a forged marker that is a symlink, and `--out ""`."""
    store = tmp_path / "store"
    store.mkdir()
    notes = store / "notes-0123456789abcdef"
    notes.mkdir()
    (notes / "thesis.txt").write_text("a user's file")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / store_mod.MARKER).write_text(store_mod.MARKER_TEXT)
    (precious / "data").write_text("keep")
    (store / "trixie-fedcba9876543210").symlink_to(precious)
    linked_marker = store / "bookworm-fedcba9876543210"
    linked_marker.mkdir()
    (linked_marker / store_mod.MARKER).symlink_to(precious / store_mod.MARKER)
    assert store_mod.prune(store) == []
    assert (notes / "thesis.txt").read_text() == "a user's file"
    assert (precious / "data").read_text() == "keep" and (store / "trixie-fedcba9876543210").is_symlink()
    assert linked_marker.is_dir()
    with pytest.raises(InputError, match="empty folder name"):
        store_mod.prune("")
