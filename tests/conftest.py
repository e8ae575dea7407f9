"""Self-test wiring: make the repository root importable (sevkit/, fixtures/, benchmarks/)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """As in the suite (fixtures/evidence.py): SIGTERM (a CI job cancelled) becomes KeyboardInterrupt,
    so every teardown still runs and no QEMU a self-test started is left behind."""
    from sevkit.signals import install_sigterm_as_interrupt

    install_sigterm_as_interrupt()


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
