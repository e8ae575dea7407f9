"""Self-test wiring: make the repository root importable (sevkit/, fixtures/, benchmarks/)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO / "tests" / "data" / "realdata"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest_plugins = ["pytester"]

# A user's clone has nothing beside it: every file a self-test reads must ship in the repository.
# This audit hook records any open() of a path in the clone's parent folder but outside the clone
# (a sibling folder of captures, say); tests/unit/test_self_contained.py fails the run if one was seen.
# What the run itself creates beside the clone is not such a sibling: a clone in /tmp (git clone . /tmp/x)
# has pytest's temp root and every tempfile.mkdtemp folder beside it. So only reads count, and a path is
# exempt when its first component under the parent is pytest's temp root or did not exist when the
# self-tests started.
OUTSIDE_OPENS: list[str] = []
_PARENT = str(REPO.parent) + os.sep
_INSIDE = str(REPO) + os.sep
_BESIDE_AT_START = frozenset(os.listdir(REPO.parent))


def _made_by_this_run(first: str) -> bool:
    return first.startswith("pytest-of-") or (first not in _BESIDE_AT_START and os.path.lexists(_PARENT + first))


def _writes(args: tuple[object, ...]) -> bool:
    """The "open" audit event's (path, mode, flags): a write or create beside the clone is not a read of data."""
    mode, flags = (*args, None, None)[1:3]
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def _audit_outside_opens(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or not args or not isinstance(args[0], str | bytes | os.PathLike) or _writes(args):
        return
    try:
        path = os.path.abspath(os.fsdecode(args[0]))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    if path.startswith(_PARENT) and not (path + os.sep).startswith(_INSIDE) \
            and not _made_by_this_run(path[len(_PARENT):].split(os.sep, 1)[0]):
        OUTSIDE_OPENS.append(path)


sys.addaudithook(_audit_outside_opens)


def pytest_configure(config: pytest.Config) -> None:
    """As in the suite (fixtures/evidence.py): SIGTERM (a CI job cancelled) becomes KeyboardInterrupt,
    so every teardown still runs and no QEMU a self-test started is left behind."""
    from sevkit.signals import install_sigterm_as_interrupt

    install_sigterm_as_interrupt()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the whole run when any test opened a file beside the clone (the data must ship inside)."""
    if OUTSIDE_OPENS:
        seen = sorted(set(OUTSIDE_OPENS))[:5]
        session.config.get_terminal_writer().line(
            f"sevkit self-tests: read files outside the clone (ship them in tests/data): {seen}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB tmpfs, for dumps that must not fit (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A private OpenSSH server on 127.0.0.1 with throw-away host and user keys (benchmarks/_sshd.py)."""
    from benchmarks._sshd import SshdUnavailable, private_sshd

    try:
        with private_sshd(tmp_path_factory.mktemp("sshd")) as server:
            yield server
    except SshdUnavailable as exc:
        pytest.fail(f"cannot run the SSH self-test: {exc}")
