"""sevkit.memory.probe.MemoryProbe, the memory suite's strategy, without pytest fixtures or QEMU:
the planter is stopped on every path, a guest whose QEMU is gone is a DumpError (could not measure),
and an explicit dump method is used as given. The guest is a stand-in (SYNTHETIC)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sevkit.errors import DumpError
from sevkit.memory.plant import Planted, Secret
from sevkit.memory.probe import MemoryProbe
from sevkit.qemu.spec import GuestSpec


class StoppedGuest:
    """What MemoryProbe reads of a GuestVM whose QEMU has exited."""

    name = "plain-main"
    pid = None
    qmp = None
    has_ssh = True

    def __init__(self) -> None:
        self.spec = GuestSpec(kind="plain", memory_mib=256, kernel=Path("/k"))


class RecordingProbe(MemoryProbe):
    """Records plant/unplant instead of running the planter in a guest."""

    events: list[str]

    def plant(self, secret: Secret) -> Planted:
        self.events.append("plant")
        return Planted(secret=secret, pid=1, copies_anon=1, copies_tmpfs=1, tmpfs_file="/dev/shm/x",
                       mlockall="ok", plant_seconds=0.0, anon_gpas=(0x2000000,))   # SYNTHETIC gpa

    def unplant(self, planted: Planted) -> None:
        self.events.append("unplant")


def probe(tmp_path: Path) -> RecordingProbe:
    p = RecordingProbe(StoppedGuest(), tmp_path, keep=False, per_gib=60.0)  # type: ignore[arg-type]
    p.events = []
    return p


def test_planter_is_stopped_when_the_scan_cannot_measure(tmp_path: Path) -> None:
    p = probe(tmp_path)
    assert p.kind == "plain" and p.ram_bytes == 256 << 20
    with pytest.raises(DumpError, match="QEMU is not running"):
        p.plant_and_scan("auto")
    assert p.events == ["plant", "unplant"]


def test_registers_without_a_monitor_is_a_dump_error(tmp_path: Path) -> None:
    with pytest.raises(DumpError, match="monitor is not connected"):
        probe(tmp_path).registers()


def test_an_explicit_method_is_used_as_given(tmp_path: Path) -> None:
    assert probe(tmp_path).method("pmemsave") == "pmemsave"
