"""The three dump methods against a real QEMU 7.2 (TCG, q35), no guest OS needed.

QEMU starts paused with ``-device loader`` placing a random 64-byte needle at two known
guest-physical addresses, one below 4 GiB and one in the RAM q35 relocates above 4 GiB
(2900 MiB > 2816 MiB, qemu-tcg-notes P9). Each method must find both at exactly those gpas,
report full coverage, and leave no dump file; a dump into a full folder must fail cleanly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from qemu.qmp.legacy import QEMUMonitorProtocol
from qemu.qmp.protocol import ConnectError

from sevkit.deadline import Deadline
from sevkit.errors import DumpError, QmpError
from sevkit.memory import dump as D
from sevkit.memory.registers import read_registers

pytestmark = pytest.mark.qemu

RAM_MIB = 2900
LOW_GPA = 0x2000000
HIGH_GPA = 0x100100000


class LegacyQmp:
    """The QmpLike interface over qemu.qmp's synchronous client (plain code, no event loop)."""

    def __init__(self, sock: Path) -> None:
        self.q = QEMUMonitorProtocol(str(sock))
        deadline = Deadline(10)
        while True:
            try:
                self.q.connect()
                return
            except (OSError, ConnectError):
                deadline.check("QMP socket")
                time.sleep(0.05)

    def execute(self, cmd: str, args: Mapping[str, object] | None = None, timeout: float = 30.0) -> Any:
        self.q.settimeout(timeout)
        resp = self.q.cmd_raw(cmd, dict(args) if args else None)
        if "error" in resp:
            raise QmpError(f"QMP {cmd} failed: {resp['error'].get('desc')}", evidence={"command": cmd})
        return resp["return"]

    def event_wait(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = Deadline(timeout)
        while True:
            ev = self.q.pull_event(wait=max(0.01, deadline.remaining))
            if ev is not None and ev.get("event") == name:
                return dict(ev)
            deadline.check(f"QMP event {name}")

    def close(self) -> None:
        self.q.close()


@dataclass
class BareQemu:
    pid: int
    qmp: LegacyQmp
    needle: bytes
    ram_bytes: int


@contextlib.contextmanager
def _bare(d: Path, ram_mib: int, gpas: tuple[int, ...], pflash: Path | None = None) -> Iterator[BareQemu]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed (scripts/host-deps.sh installs it)")
    needle = os.urandom(64)
    (d / "needle.bin").write_bytes(needle)
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", str(ram_mib), "-nodefaults",
            "-display", "none", "-no-user-config", "-S", "-qmp", f"unix:{d}/qmp.sock,server=on,wait=off"]
    for gpa in gpas:
        argv += ["-device", f"loader,file={d}/needle.bin,addr={gpa:#x}"]
    if pflash is not None:   # firmware in pflash (as SEV/SEV-ES guests boot), not a BIOS ROM ending at 4 GiB
        argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={pflash}"]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    qmp = None
    try:
        qmp = LegacyQmp(d / "qmp.sock")
        yield BareQemu(proc.pid, qmp, needle, ram_mib << 20)
    finally:
        if qmp is not None:
            qmp.close()
        os.killpg(proc.pid, signal.SIGKILL)   # our own session: the whole group
        proc.wait(10)


@pytest.fixture(scope="module")
def bare_qemu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareQemu]:
    with _bare(tmp_path_factory.mktemp("bareqemu"), RAM_MIB, (LOW_GPA, HIGH_GPA)) as q:
        yield q


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Dump scratch space in RAM (tmpfs) when it has room: 3 GB dumps write faster there."""
    base = "/dev/shm" if shutil.disk_usage("/dev/shm").free > 8 << 30 else None
    d = Path(tempfile.mkdtemp(prefix="sevkit-dumps-", dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("method", D.METHODS)
def test_method_finds_needles_at_exact_gpas(bare_qemu: BareQemu, scratch: Path, method: str) -> None:
    control = os.urandom(64)
    ms = D.acquire_and_scan(method, qmp=bare_qemu.qmp, pid=bare_qemu.pid, ram_bytes=bare_qemu.ram_bytes,
                            needles=[bare_qemu.needle, control], folder=scratch / "dumps")
    assert sorted(h.gpa for h in ms.hits(bare_qemu.needle)) == [LOW_GPA, HIGH_GPA], ms.to_json()
    assert ms.count(control) == 0
    cov = ms.coverage
    assert cov.complete and cov.bytes_read == bare_qemu.ram_bytes, cov.to_json()
    assert [r.gpa for r in cov.ranges_read if r.gpa >= 1 << 32] == [1 << 32]
    assert list((scratch / "dumps").glob("*")) == [] if (scratch / "dumps").exists() else True
    if method == "elf":   # the offset is the byte offset in the ELF file, the gpa comes from its PT_LOAD
        assert all(h.offset != h.gpa for h in ms.hits(bare_qemu.needle))
    if method == "pmemsave":   # the low range's file offset is its gpa
        low = [h for h in ms.hits(bare_qemu.needle) if h.gpa == LOW_GPA]
        assert low[0].offset == LOW_GPA


@pytest.mark.parametrize("method", D.METHODS)
def test_each_view_of_exact_pages(bare_qemu: BareQemu, scratch: Path, method: str) -> None:
    """The secret's pages (here: the loader's needle pages, below and above 4 GiB) in each method's view,
    both inside a full scan and on their own; a page next to them reads as zeros, one in the PCI hole is absent."""
    pages = {LOW_GPA: "anon", HIGH_GPA: "tmpfs", LOW_GPA + 0x1000: "anon", 0xC0000000: "anon"}   # PCI hole
    want = [(LOW_GPA, "secret"), (LOW_GPA + 0x1000, "zero"), (0xC0000000, "absent"), (HIGH_GPA, "secret")]
    ms = D.acquire_and_scan(method, qmp=bare_qemu.qmp, pid=bare_qemu.pid, ram_bytes=bare_qemu.ram_bytes,
                            needles=[bare_qemu.needle], folder=scratch / "dumps", pages=pages)
    assert [(v.gpa, v.outcome) for v in ms.page_views[method]] == want
    alone = D.examine_pages(method, qmp=bare_qemu.qmp, pid=bare_qemu.pid, ram_bytes=bare_qemu.ram_bytes,
                            pages=pages, needle=bare_qemu.needle, folder=scratch / "pages")
    assert [(v.gpa, v.outcome) for v in alone] == want
    assert list((scratch / "pages").glob("*")) == [] if (scratch / "pages").exists() else True


def test_small_guest_at_reset_dumps_as_elf32(tmp_path_factory: pytest.TempPathFactory, scratch: Path) -> None:
    """QEMU writes ELFCLASS32 when the first vCPU is not in long mode and no RAM block ends above 4 GiB
    (target/i386/arch_dump.c cpu_get_dump_info(); an SEV-ES guest looks like that because its vCPU state is
    encrypted). Firmware in pflash is not a RAM block (a BIOS ROM would end at 4 GiB and force ELF64), as
    for SEV/SEV-ES guests. The scanner reads it: the needle is found at its gpa."""
    code = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
    if not code.is_file():
        pytest.fail(f"{code} missing (scripts/host-deps.sh installs ovmf)")
    with _bare(tmp_path_factory.mktemp("bare32"), 256, (LOW_GPA,), pflash=code) as q:
        path = D.dump_elf(q.qmp, scratch, q.ram_bytes)
        try:
            assert path.read_bytes()[:5] == b"\x7fELF\x01"   # ELFCLASS32, written by this QEMU
        finally:
            D.remove_dumps([path])
        ms = D.acquire_and_scan("elf", qmp=q.qmp, pid=q.pid, ram_bytes=q.ram_bytes, needles=[q.needle],
                                folder=scratch / "d", pages={LOW_GPA: "anon"})
        assert [h.gpa for h in ms.hits(q.needle)] == [LOW_GPA]
        assert [v.outcome for v in ms.page_views["elf"]] == ["secret"]


def test_keep_dumps_leaves_0600_files(bare_qemu: BareQemu, scratch: Path) -> None:
    ms = D.acquire_and_scan("pmemsave", qmp=bare_qemu.qmp, pid=bare_qemu.pid, ram_bytes=bare_qemu.ram_bytes,
                            needles=[bare_qemu.needle], folder=scratch / "dumps", keep=True)
    files = sorted((scratch / "dumps").iterdir())
    assert [f.name for f in files] == ms.files
    assert [f.name.split("-")[1] for f in files] == ["0x0", "0x100000000"]
    assert all((f.stat().st_mode & 0o777) == 0o600 for f in files)
    assert (scratch / "dumps").stat().st_mode & 0o777 == 0o700




@pytest.mark.parametrize("method", ["elf", "pmemsave"])
def test_dump_that_runs_out_of_space_fails_cleanly(bare_qemu: BareQemu, small_tmpfs: Path, method: str) -> None:
    """The space check is lied to, so QEMU itself hits ENOSPC: still a DumpError, no file left."""
    def liar(_p: str) -> Any:
        return SimpleNamespace(f_bavail=1 << 40, f_frsize=4096)
    with pytest.raises(DumpError) as ei:
        D.acquire_and_scan(method, qmp=bare_qemu.qmp, pid=bare_qemu.pid, ram_bytes=bare_qemu.ram_bytes,
                           needles=[bare_qemu.needle], folder=small_tmpfs / "dumps", statvfs=liar)
    assert "MiB free" in str(ei.value), str(ei.value)   # QEMU's own words plus the room left
    assert list((small_tmpfs / "dumps").iterdir()) == []
    # and the honest check refuses before QEMU is asked
    with pytest.raises(DumpError, match="not enough room"):
        D.acquire_and_scan(method, qmp=bare_qemu.qmp, pid=bare_qemu.pid, ram_bytes=bare_qemu.ram_bytes,
                           needles=[bare_qemu.needle], folder=small_tmpfs / "dumps")
    # the guest's QEMU is still usable afterwards
    assert bare_qemu.qmp.execute("query-status")["status"] == "prelaunch"


def test_registers_of_a_vcpu_at_reset_are_not_live_state(bare_qemu: BareQemu) -> None:
    view = read_registers(bare_qemu.qmp, samples=2, interval=0.05)
    assert view.samples and not view.errors
    assert view.live is False   # real mode, paging off: no running guest to see yet
