"""The image cache: one folder per recipe, built once per machine, never half-built.

Layout of the store (default ``/var/cache/sevkit/images``, or ``$SEVKIT_CACHE_DIR/images``)::

    <suite>-<hash16>/          a finished image: image.json, disk.qcow2, vmlinuz, initrd.img, build.log
    .<suite>-<hash16>.lock     flock held while that image is being built
    .<suite>-<hash16>.tmp-*    a build in progress (or a dead one, removed by the next build)
    .debs/<suite>/             debootstrap's .deb cache
    logs/                      logs of failed builds

A build happens in a ``.tmp-*`` folder and is renamed into place only when complete (the rename is
atomic), so a reader either sees a whole image or none. The lock makes concurrent builders of the same
recipe wait for the first and then use its result.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..deadline import Deadline
from ..errors import ImageError, InputError
from ..userfiles import shown
from ..versions import version_tuple
from .build import Builder, Progress, preflight, remove_tree
from .recipe import DEFAULT_MIRROR, DEFAULT_SUITE, KNOWN_SUITES, MIN_KERNEL_FOR_TSM, Recipe
from .spec import MANIFEST_NAME, GuestImage, load_image_spec, write_manifest

LOCK_WAIT_S = 3600.0      # a whole cold build by another process, with margin
MARKER = ".sevkit-image"  # written first into every build folder: the store's own mark
MARKER_TEXT = "sevkit image store folder: 'sevkit image prune' may delete this folder\n"
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}-[0-9a-f]{16}$")


def default_store() -> Path:
    base = os.environ.get("SEVKIT_CACHE_DIR")
    return (Path(base) / "images") if base else Path("/var/cache/sevkit/images")


def _store(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None and str(cache_dir) == "":
        raise InputError("image store: empty folder name (leave --out out for the default store)")
    store = Path(cache_dir) if cache_dir is not None else default_store()
    try:
        st = os.stat(store)
    except OSError:
        return store                  # missing (built on demand) or unreadable (reported where used)
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"image store {shown(store)}: exists and is not a folder")
    return store


def image_dir(recipe: Recipe, cache_dir: str | Path | None = None) -> Path:
    return _store(cache_dir) / recipe.name


def find_image(suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR,
               cache_dir: str | Path | None = None, *, recipe: Recipe | None = None) -> GuestImage | None:
    """The cached image for this recipe, or None. Never builds. A folder whose manifest is missing,
    unreadable, for another recipe, or whose files are missing or of another size counts as absent."""
    recipe = recipe or Recipe(suite=suite, mirror=mirror)
    folder = image_dir(recipe, cache_dir)
    return _valid_image(folder, recipe)


def _valid_image(folder: Path, recipe: Recipe) -> GuestImage | None:
    try:
        if not (folder / MANIFEST_NAME).is_file():
            return None
    except PermissionError:
        raise ImageError(f"image store {shown(folder.parent)}: permission denied") from None
    except OSError:
        return None
    try:
        image = load_image_spec(folder / MANIFEST_NAME)
    except InputError:
        return None
    if image.recipe_hash != recipe.hash:
        return None
    sizes = image.extra.get("sizes", {})
    for key, path in (("disk", image.disk), ("kernel", image.kernel), ("initrd", image.initrd)):
        try:
            if not isinstance(sizes, dict) or sizes.get(key) != path.stat().st_size:
                return None
        except OSError:
            return None
    return image


@contextmanager
def _locked(store: Path, name: str, progress: Progress | None) -> Iterator[None]:
    store.mkdir(parents=True, exist_ok=True)
    lock_path = store / f".{name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = Deadline(LOCK_WAIT_S)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline.expired:
                    raise ImageError(f"another process has been building {name} for over {LOCK_WAIT_S:.0f}s "
                                     f"(lock {lock_path}); is it stuck?") from None
                if not told and progress is not None:
                    progress(f"image: waiting for another build of {name} to finish (lock {lock_path})")
                    told = True
                time.sleep(min(2.0, deadline.remaining))
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)   # releases the flock


def _clean_leftovers(store: Path, name: str, progress: Progress | None) -> None:
    """Remove dead builds of ``name`` (only called while holding its lock, so none is alive)."""
    for tmp in store.glob(f".{name}.tmp-*"):
        if progress is not None:
            progress(f"image: removing a dead build folder {tmp}")
        remove_tree(tmp)


def ensure_image(suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR,
                 cache_dir: str | Path | None = None, progress: Progress | None = None, *,
                 recipe: Recipe | None = None, check_mirror: bool = True) -> GuestImage:
    """The cached image for this recipe, built first on a miss (needs root, debootstrap, the mirror)."""
    recipe = recipe or Recipe(suite=suite, mirror=mirror)
    store = _store(cache_dir)
    hit = _valid_image(store / recipe.name, recipe)
    if hit is not None:
        return hit
    preflight(recipe, store, check_mirror=check_mirror)
    with _locked(store, recipe.name, progress):
        hit = _valid_image(store / recipe.name, recipe)   # another process may have built it meanwhile
        if hit is not None:
            return hit
        _clean_leftovers(store, recipe.name, progress)
        return _build(recipe, store, progress)


def _build(recipe: Recipe, store: Path, progress: Progress | None) -> GuestImage:
    final = store / recipe.name
    tmp = store / f".{recipe.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
    tmp.mkdir(mode=0o755)
    (tmp / MARKER).write_text(MARKER_TEXT)     # prune deletes only folders that carry this
    # the log lives outside the temporary folder so that a failed build's log survives its clean-up
    logs = store / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    builder = Builder(recipe, tmp, log, store / ".debs" / recipe.suite, progress)
    builder.say(f"building {recipe.name} ({recipe.suite} from {recipe.mirror_url}) in {tmp}; log {log}")
    ok = False
    try:
        facts = builder.build()
        seconds = round(time.monotonic() - builder.started, 1)
        disk, kernel, initrd = Path(str(facts["disk"])), Path(str(facts["kernel"])), Path(str(facts["initrd"]))
        image = GuestImage(root=tmp, disk=disk, kernel=kernel, initrd=initrd,
                           append=str(recipe.params["append"]), suite=recipe.suite,
                           kernel_version=str(facts["kernel_version"]), recipe_hash=recipe.hash,
                           disk_format=str(recipe.params["disk_format"]))
        tsm = version_tuple(image.kernel_version) >= MIN_KERNEL_FOR_TSM
        if not tsm:
            builder.say(f"note: kernel {image.kernel_version} is older than "
                        f"{'.'.join(map(str, MIN_KERNEL_FOR_TSM))}: SNP guests of this image have no configfs-tsm")
        write_manifest(image, tmp, configfs_tsm=tsm,
                       mirror=recipe.mirror_url, packages=sorted(recipe.packages),
                       built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       build_seconds=seconds, step_seconds=builder.timings,
                       sizes={"disk": disk.stat().st_size, "kernel": kernel.stat().st_size,
                              "initrd": initrd.stat().st_size},
                       fs_bytes=facts["fs_bytes"], recipe=recipe.canonical(),
                       credentials_fw_cfg="opt/org.sevkit/{authorized_keys,root_password_hash,ssh_host_ed25519_key}",
                       build_log="build.log")
        shutil.move(str(log), tmp / "build.log")
        if final.exists():   # a broken leftover (the lock is ours, the manifest did not validate)
            remove_tree(final)
        os.rename(tmp, final)
        ok = True
        builder.say(f"ready: {final / MANIFEST_NAME} ({seconds:.0f}s)")
    finally:
        if not ok:
            try:
                remove_tree(tmp)
            except ImageError as exc:   # keep the build's own error; the next build retries the clean-up
                builder.say(f"could not remove {tmp}: {exc}")
    built = _valid_image(final, recipe)
    if built is None:
        raise ImageError(f"the image built in {final} does not validate (manifest or sizes)")
    return built



def _ours(entry: Path, name: str) -> bool:
    """Is ``entry`` a folder this store made? A real folder (never a symlink) that carries the
    marker, or (images built before the marker) whose manifest names the recipe hash in its name."""
    try:
        if not stat.S_ISDIR(os.lstat(entry).st_mode):
            return False
        marker = entry / MARKER
        if stat.S_ISREG(os.lstat(marker).st_mode) and marker.read_text()[:200] == MARKER_TEXT:
            return True
    except (OSError, UnicodeDecodeError):
        pass
    try:
        manifest = entry / MANIFEST_NAME
        if not stat.S_ISREG(os.lstat(manifest).st_mode):
            return False
        image = load_image_spec(manifest)
    except (OSError, InputError):
        return False
    return bool(image.recipe_hash) and name.endswith("-" + image.recipe_hash[:16])


def prune(cache_dir: str | Path | None = None, *, keep: list[Recipe] | None = None,
          progress: Progress | None = None) -> list[Path]:
    """Remove images other than those of ``keep`` (default: the current recipe of each known suite from
    the default mirror) and dead build folders. Only folders that carry the store's marker (see
    ``_ours``) are ever removed; symlinks are never followed; folders being built (lock held) are
    left alone."""
    store = _store(cache_dir)
    try:
        st = os.stat(store)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"image store {shown(store)}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"image store {shown(store)}: not a folder")
    keep_names = {r.name for r in (keep if keep is not None else [Recipe(suite=s) for s in KNOWN_SUITES])}
    removed: list[Path] = []
    try:
        entries = sorted(store.iterdir())
    except OSError as exc:
        raise InputError(f"image store {shown(store)}: cannot list: {exc.strerror or exc}") from None
    for entry in entries:
        if entry.name in keep_names or entry.name in ("logs", ".debs"):
            continue
        name = entry.name.lstrip(".").split(".tmp-", 1)[0]
        if not _NAME_RE.match(name) or not _ours(entry, name):
            continue
        lock = store / f".{name}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError:
            continue              # a planted symlink or something else that is not our lock
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue          # being built right now
            if progress is not None:
                progress(f"image: removing {shown(entry)}")
            remove_tree(entry)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed
