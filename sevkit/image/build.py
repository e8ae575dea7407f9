"""Building the guest image from its recipe, without loop mounts.

Steps (each bounded by a deadline, its output appended to one build log):

1. ``debootstrap --variant=minbase`` into ``rootfs/`` (the .debs are cached next to the images);
2. copy ``guest/`` into the chroot and run ``configure.sh`` there (networkd, sshd, serial getty,
   credentials unit, masks, a small initramfs, trimming);
3. copy out the kernel and initrd for direct kernel boot;
4. ``mkfs.ext4 -d rootfs`` into a sparse file: the whole disk is one ext4 filesystem labelled
   ``sevroot`` (no partition table, no GRUB, no ESP: the launcher boots OVMF with ``-kernel``);
5. ``qemu-img convert -O qcow2`` to the base disk.

The caller (store.py) builds in a temporary folder and renames it into place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from ..deadline import Deadline
from ..errors import ImageError
from .recipe import Recipe
from .spec import kernel_version_of

Progress = Callable[[str], None]

MIN_FREE_BYTES = 4 << 30          # rootfs (~0.7 GB) + sparse ext4 + qcow2, with room to spare
TOOLS = {"debootstrap": "debootstrap", "chroot": "coreutils", "mkfs.ext4": "e2fsprogs",
         "qemu-img": "qemu-utils", "umount": "mount"}
STEP_DEADLINES = {"debootstrap": 1800.0, "configure": 600.0, "mkfs": 600.0, "qcow2": 600.0}
HEARTBEAT_S = 15.0
LOG_TAIL_LINES = 15


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def preflight(recipe: Recipe, store: Path, *, check_mirror: bool = True) -> None:
    """The clear one-line errors: not root, tools missing, unknown suite, no space, mirror unreachable."""
    if os.geteuid() != 0:
        raise ImageError("building the guest image needs root (debootstrap and chroot); run as root, "
                         "or point the suite at a prebuilt image (sev_image = /path/to/image.json)")
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} not found: apt-get install {package} (or run make hostdeps)")
    scripts = Path(os.environ.get("DEBOOTSTRAP_DIR", "/usr/share/debootstrap")) / "scripts"
    if scripts.is_dir() and not (scripts / recipe.suite).exists():
        raise ImageError(f"debootstrap on this host does not know suite {recipe.suite!r} "
                         f"(no {scripts / recipe.suite}); upgrade debootstrap or choose another --suite")
    store.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(store).free
    if free < MIN_FREE_BYTES:
        raise ImageError(f"not enough disk space in {store}: {free >> 20} MiB free, the build needs "
                         f"{MIN_FREE_BYTES >> 20} MiB (set SEVKIT_CACHE_DIR or --out elsewhere)",
                         evidence={"free_bytes": free})
    if check_mirror:
        check_mirror_reachable(recipe)


def check_mirror_reachable(recipe: Recipe, timeout: float = 20.0) -> None:
    url = f"{recipe.mirror_url}/dists/{recipe.suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise ImageError(f"mirror {recipe.mirror_url} has no suite {recipe.suite!r} ({url}: 404)") from None
        raise ImageError(f"mirror {recipe.mirror_url} unreachable: {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageError(f"mirror {recipe.mirror_url} unreachable: {reason}") from None


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path`` (debootstrap mounts proc/sys in the chroot; a killed build can
    leave them). Deepest first."""
    target = os.path.realpath(path)
    found: list[Path] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) < 5:
            continue
        point = parts[4].encode().decode("unicode_escape")
        if point == target or point.startswith(target.rstrip("/") + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_tree(path: Path) -> None:
    """Delete a build folder safely: unmount anything left mounted inside, never cross into another
    filesystem, refuse if a mount cannot be removed."""
    if not path.exists() and not path.is_symlink():
        return
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=60, check=False)
    left = mounts_under(path)
    if left:
        raise ImageError(f"cannot remove {path}: still mounted inside: {', '.join(map(str, left))}")
    subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True,
                   timeout=600, check=False)
    if path.exists():
        raise ImageError(f"could not remove the build folder {path}")


class Builder:
    """Runs the steps into ``workdir`` for ``recipe``; every command's output goes to ``log``."""

    def __init__(self, recipe: Recipe, workdir: Path, log: Path, deb_cache: Path,
                 progress: Progress | None = None) -> None:
        self.recipe = recipe
        self.workdir = workdir
        self.log = log
        self.deb_cache = deb_cache
        self.progress = progress or (lambda _msg: None)
        self.timings: dict[str, float] = {}
        self.started = time.monotonic()

    def say(self, msg: str) -> None:
        self.progress(f"image: [{time.monotonic() - self.started:5.0f}s] {msg}")

    def run(self, step: str, argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        """Run one command, output to the log, a heartbeat on progress, the step's deadline enforced."""
        deadline = Deadline(STEP_DEADLINES.get(step, 600.0))
        self.say(f"{step}: {' '.join(argv[:3])}{' ...' if len(argv) > 3 else ''}")
        with open(self.log, "a") as logfh:
            logfh.write(f"\n### {step}: {' '.join(argv)}\n")
            logfh.flush()
            proc = subprocess.Popen(list(argv), stdout=logfh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, start_new_session=True)
            try:
                rc = self._wait(step, proc, deadline, logfh)
            except BaseException:
                self._kill(proc)
                raise
        self.timings[step] = round(self.timings.get(step, 0.0) + deadline.elapsed, 1)
        if rc != 0:
            if _log_mentions_enospc(self.log):
                raise ImageError(f"no disk space left while building in {self.workdir}; see {self.log}")
            raise ImageError(f"image build step {step} failed (exit {rc}); log: {self.log}\n{log_tail(self.log)}",
                             evidence={"step": step, "argv": list(argv), "exit_status": rc,
                                       "log": str(self.log), "log_tail": log_tail(self.log, 40)})
        self.say(f"{step}: done in {deadline.elapsed:.1f}s")

    def _wait(self, step: str, proc: subprocess.Popen[bytes], deadline: Deadline, logfh: IO[str]) -> int:
        while True:
            try:
                return proc.wait(timeout=deadline.cap(HEARTBEAT_S))
            except subprocess.TimeoutExpired:
                pass
            if deadline.expired:
                self._kill(proc)
                raise ImageError(f"image build step {step} exceeded its {deadline.seconds:.0f}s deadline; "
                                 f"log: {self.log}\n{log_tail(self.log)}",
                                 evidence={"step": step, "log": str(self.log)})
            last = log_tail(self.log, 1).strip()
            self.say(f"{step}: {deadline.elapsed:.0f}s ... {last[:90]}")

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    # -- the steps ---------------------------------------------------------------------------------

    def build(self) -> dict[str, object]:
        """Build everything into ``workdir``; returns the manifest's build facts."""
        rootfs = self.workdir / "rootfs"
        self.deb_cache.mkdir(parents=True, exist_ok=True)
        params = self.recipe.params
        self.run("debootstrap", [
            "debootstrap", f"--variant={params['variant']}", f"--components={params['components']}",
            f"--cache-dir={self.deb_cache}", "--include=" + ",".join(self.recipe.packages),
            self.recipe.suite, str(rootfs), self.recipe.mirror_url])

        staging = rootfs / "tmp" / "sevkit-guest"
        staging.mkdir(parents=True, exist_ok=True)
        for name, text in self.recipe.files.items():
            target = staging / name
            target.write_text(text)
            target.chmod(0o755)
        self.run("configure", ["chroot", str(rootfs), "/bin/sh", "/tmp/sevkit-guest/configure.sh"],
                 env={"LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"})

        kernel, initrd = self._extract_boot(rootfs)
        kernel_version = kernel_version_of(kernel)

        raw = self.workdir / "root.ext4"
        size = _fs_size(rootfs, int(params["fs_headroom_mib"]))
        with open(raw, "wb") as fh:
            fh.truncate(size)   # sparse
        self.run("mkfs", [*params["mkfs"], "-d", str(rootfs), str(raw)])
        disk = self.workdir / "disk.qcow2"
        self.run("qcow2", ["qemu-img", "convert", "-O", str(params["disk_format"]), str(raw), str(disk)])
        raw.unlink()
        self.say("removing the build rootfs")
        remove_tree(rootfs)
        return {"kernel_version": kernel_version, "kernel": kernel, "initrd": initrd, "disk": disk,
                "fs_bytes": size}

    def _extract_boot(self, rootfs: Path) -> tuple[Path, Path]:
        kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
        if len(kernels) != 1:
            raise ImageError(f"expected one kernel in the guest's /boot, found {[k.name for k in kernels]}; "
                             f"log: {self.log}")
        release = kernels[0].name.removeprefix("vmlinuz-")
        initrd = rootfs / "boot" / f"initrd.img-{release}"
        if not initrd.is_file():
            raise ImageError(f"the guest has no initrd for kernel {release}; log: {self.log}\n{log_tail(self.log)}")
        out_k, out_i = self.workdir / "vmlinuz", self.workdir / "initrd.img"
        shutil.copyfile(kernels[0], out_k)
        shutil.copyfile(initrd, out_i)
        self.say(f"kernel {release}: vmlinuz {out_k.stat().st_size >> 20} MiB, "
                 f"initrd {out_i.stat().st_size >> 20} MiB")
        return out_k, out_i


def _fs_size(rootfs: Path, headroom_mib: int) -> int:
    """Bytes for the ext4 file: what the rootfs occupies plus 25% for metadata plus headroom, 64 MiB aligned."""
    used = 0
    for dirpath, _dirs, files in os.walk(rootfs):
        for name in files:
            with contextlib.suppress(OSError):
                used += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    size = int(used * 1.25) + (headroom_mib << 20)
    align = 64 << 20
    return (size + align - 1) // align * align


def _log_mentions_enospc(log: Path) -> bool:
    return os.strerror(errno.ENOSPC) in log_tail(log, 50)
