"""The QMP facade and query-sev-capabilities against a real, non-booting QEMU (-machine none)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sevkit.deadline import Deadline
from sevkit.errors import GuestTimeout, LaunchError, LaunchRefused, QmpError
from sevkit.qemu.caps import SevCapabilities, cross_check_cbitpos, query_sev_capabilities
from sevkit.qemu.qmp import Qmp

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed")


@pytest.fixture
def qemu_none() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="sk-qmp-"))
    sock = folder / "qmp.sock"
    assert QEMU is not None
    proc = subprocess.Popen([QEMU, "-machine", "none", "-accel", "tcg", "-nodefaults", "-display", "none", "-S",
                             "-qmp", f"unix:{sock},server=on,wait=off"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield sock
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def test_execute_events_and_errors(qemu_none: Path, tmp_path: Path) -> None:
    with Qmp(qemu_none, tmp_path / "qmp.log") as qmp:
        qmp.connect(Deadline(10))
        assert qmp.execute("query-status")["status"] == "prelaunch"
        qmp.execute("cont")
        qmp.execute("stop")
        assert qmp.event_wait("STOP", 5)["event"] == "STOP"
        with pytest.raises(GuestTimeout):
            qmp.event_wait("SHUTDOWN", 0.3)
        with pytest.raises(QmpError) as info:
            qmp.execute("no-such-command")
        assert info.value.evidence["error_class"] == "CommandNotFound"
    log = (tmp_path / "qmp.log").read_text()
    assert "query-status" in log and '"event": "STOP"' in log


def test_socket_is_free_again_after_close(qemu_none: Path) -> None:
    """P4: one client per socket; close() must disconnect so the next client gets in."""
    statuses = []
    for _ in range(2):
        with Qmp(qemu_none) as qmp:
            qmp.connect(Deadline(10))
            statuses.append(qmp.execute("query-status", timeout=5))
    assert len(statuses) == 2 and all("status" in s for s in statuses), statuses


def test_connect_times_out_without_socket(tmp_path: Path) -> None:
    with Qmp(tmp_path / "absent.sock") as qmp, pytest.raises(GuestTimeout, match="not answering"):
        qmp.connect(Deadline(0.5))


def test_query_sev_capabilities_surfaces_qemu_text() -> None:
    assert QEMU is not None
    with pytest.raises(LaunchError, match="KVM not enabled"):
        query_sev_capabilities(QEMU, accel="tcg")


def test_cbitpos_cross_check() -> None:
    caps = SevCapabilities(51, 1, {"cbitpos": 51})
    cross_check_cbitpos(caps, 51)
    cross_check_cbitpos(caps, None)
    with pytest.raises(LaunchRefused, match="C-bit"):
        cross_check_cbitpos(caps, 47)
