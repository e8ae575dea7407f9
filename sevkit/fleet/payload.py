"""What the controller ships to every host: its own sevkit, the exact dependencies, the suite.

* ``sevkit-*.whl``: ``pip wheel --no-deps`` of the checkout the controller runs from, so every
  host runs the same sevkit.
* the dependency wheels, pinned to the versions installed beside the controller (the closure of
  the wheel's Requires-Dist over this environment's distributions), so hosts need no index:
  ``pip install --no-index --find-links`` works offline.
* ``suite.tar.gz``: what the wheel does not hold and ``pytest`` needs (conftest.py, pytest.ini,
  fixtures/, suites/).

Wheels are cached under ``$SEVKIT_CACHE_DIR/fleet-wheels`` (default ~/.cache/sevkit), keyed by
the source hash (sevkit's wheel) and by the pin set (dependencies): a second run builds nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..evidence import sha256_file as sha256_file  # re-exported (hostjob)
from .errors import FleetError

SUITE_PARTS = ("conftest.py", "pytest.ini", "fixtures", "suites")
WHEEL_PARTS = ("pyproject.toml", "README.md", "sevkit")


@dataclass
class Payload:
    """Files to upload (name -> local path) and their sha256, plus the sevkit wheel's name."""

    folder: Path
    sevkit_wheel: str
    files: dict[str, Path] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    python: tuple[int, int] = (sys.version_info.major, sys.version_info.minor)

    @property
    def wheels(self) -> list[str]:
        return sorted(n for n in self.files if n.endswith(".whl"))

    @property
    def pip_wheel(self) -> str:
        return next((n for n in self.wheels if n.startswith("pip-")), "")


def _source_files(checkout: Path, parts: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        p = checkout / part
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(f for f in sorted(p.rglob("*"))
                       if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".pyo"))
    return out


def tree_hash(checkout: Path, parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for f in _source_files(checkout, parts):
        h.update(str(f.relative_to(checkout)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("SEVKIT_CACHE_DIR") or os.path.expanduser("~/.cache/sevkit")
    return Path(base) / "fleet-wheels"


def _pip(args: list[str], what: str, timeout: float = 600) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise FleetError(f"{what}: pip did not finish within {timeout:.0f}s", evidence={"argv": cmd}) from exc
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise FleetError(f"{what}: pip exited {proc.returncode}: {tail}", evidence={"argv": cmd})


def _cached(folder: Path, build: Callable[[Path], None]) -> Path:
    """Build into a temp folder beside ``folder`` and rename it into place (atomic, no half state)."""
    if (folder / ".complete").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("")
        try:
            os.rename(tmp, folder)
        except OSError:      # a concurrent build won the race: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists() and tmp != folder:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def build_sevkit_wheel(checkout: Path) -> Path:
    """``pip wheel --no-deps`` of the checkout, cached by the hash of what goes into it."""
    key = tree_hash(checkout, WHEEL_PARTS)

    def _build(tmp: Path) -> None:
        # build from a copy: pip/setuptools write build/ and *.egg-info into the source tree
        src = tmp / "src"
        for part in WHEEL_PARTS:
            p = checkout / part
            if p.is_dir():
                shutil.copytree(p, src / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif p.is_file():
                src.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, src / part)
        _pip(["wheel", "--no-deps", "-q", "-w", str(tmp / "out"), str(src)], "build sevkit wheel")
        shutil.rmtree(src)
    folder = _cached(cache_root() / f"sevkit-{key}", _build)
    wheels = sorted((folder / "out").glob("sevkit-*.whl"))
    if not wheels:
        raise FleetError(f"build sevkit wheel: no wheel in {folder}")
    return wheels[0]


def _requires(dist: md.Distribution) -> list[Requirement]:
    out = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(req)
    return out


def dependency_pins(wheel: Path) -> dict[str, str]:
    """The closure of the wheel's requirements, pinned to this environment's installed versions."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = zf.read(meta_name).decode()
    todo = [Requirement(line.split(":", 1)[1].strip()) for line in meta.splitlines()
            if line.startswith("Requires-Dist:")]
    todo = [r for r in todo if r.marker is None or r.marker.evaluate({"extra": ""})]
    pins: dict[str, str] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in pins:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError as exc:
            raise FleetError(f"dependency {req.name} of sevkit is not installed beside the controller "
                             f"({sys.executable}): install sevkit's requirements first") from exc
        pins[name] = dist.version
        todo.extend(_requires(dist))
    # pip itself is shipped too: hosts run it from its wheel (``python pip.whl/pip install``, the
    # way get-pip bootstraps) into a ``venv --without-pip``, skipping ensurepip's own install.
    pins["pip"] = md.version("pip")
    return dict(sorted(pins.items()))


def build_dependency_wheels(pins: dict[str, str]) -> Path:
    key = hashlib.sha256(repr((sys.version_info[:2], sorted(pins.items()))).encode()).hexdigest()[:16]

    def _build(tmp: Path) -> None:
        _pip(["wheel", "--no-deps", "-q", "-w", str(tmp / "out"), *(f"{n}=={v}" for n, v in pins.items())],
             "build dependency wheels")
    return _cached(cache_root() / f"deps-{key}", _build) / "out"


def suite_tarball(checkout: Path, dest: Path) -> Path:
    """conftest.py, pytest.ini, fixtures/, suites/ as one deterministic tar.gz."""
    missing = [p for p in SUITE_PARTS if not (checkout / p).exists()]
    if missing:
        raise FleetError(f"{checkout} is not a sevkit checkout: missing {', '.join(missing)}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for f in _source_files(checkout, SUITE_PARTS):
            data = f.read_bytes()
            info = tarfile.TarInfo(str(f.relative_to(checkout)))
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    dest.write_bytes(buf.getvalue())
    return dest


def build_payload(checkout: Path, folder: Path, *, with_wheels: bool = True) -> Payload:
    """Everything to ship, gathered in ``folder`` (wheels are hard links or copies from the cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    suite = suite_tarball(checkout, folder / "suite.tar.gz")
    payload = Payload(folder, sevkit_wheel="")
    payload.files["suite.tar.gz"] = suite
    if with_wheels:
        wheel = build_sevkit_wheel(checkout)
        payload.sevkit_wheel = wheel.name
        sources = [wheel, *sorted(build_dependency_wheels(dependency_pins(wheel)).glob("*.whl"))]
        for src in sources:
            payload.files[src.name] = src
    for name, path in payload.files.items():
        payload.sha256[name] = sha256_file(path)
    return payload
