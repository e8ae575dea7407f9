"""Dump acquisition without a guest: RAM layout, space checks, QMP failures, /proc/<pid>/mem on a
real process, register parsing, and the planter run for real in a local shell."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers.memdumps import CHILD, FakeQmp

from sevkit.errors import DumpError
from sevkit.memory import dump as D
from sevkit.memory import gmem as G
from sevkit.memory import plant as P
from sevkit.memory.registers import RegisterView, parse_registers
from sevkit.results import CommandResult

NEEDLE = bytes.fromhex("c0ffee00" * 4) + os.urandom(16)
MiB = 1 << 20


# --- RAM layout (qemu-tcg-notes P9) --------------------------------------------------------

def test_q35_ram_split_at_2816_mib() -> None:
    assert D.ram_ranges(1024 * MiB) == [D.RamRange(0, 1024 * MiB)]
    assert D.ram_ranges(2815 * MiB) == [D.RamRange(0, 2815 * MiB)]
    assert D.ram_ranges(2816 * MiB) == [D.RamRange(0, 2048 * MiB), D.RamRange(1 << 32, 768 * MiB)]
    assert D.ram_ranges(4096 * MiB) == [D.RamRange(0, 2048 * MiB), D.RamRange(1 << 32, 2048 * MiB)]
    assert D.ram_ranges(4096 * MiB, "pc-i440fx-7.2") == [D.RamRange(0, 3072 * MiB), D.RamRange(1 << 32, 1024 * MiB)]


def test_mapped_spans_reports_holes() -> None:
    M = D.Mapping_
    maps = [M(0x1000, 0x3000, "rw-p", ""), M(0x3000, 0x5000, "rw-p", ""), M(0x8000, 0x9000, "rw-p", "")]
    assert D.mapped_spans(maps, 0x1000, 0x4000) == ([(0, 0x4000)], [])
    assert D.mapped_spans(maps, 0x2000, 0x5000) == ([(0, 0x3000)], [(0x3000, 0x2000)])
    assert D.mapped_spans(maps, 0x6000, 0x1000) == ([], [(0, 0x1000)])


# --- space checks and failures ---------------------------------------------------------------

def statvfs_with(free: int) -> Any:
    return lambda _p: SimpleNamespace(f_bavail=free // 4096, f_frsize=4096)


def test_too_small_folder_is_a_clear_dump_error(tmp_path: Path) -> None:
    qmp = FakeQmp()
    with pytest.raises(DumpError, match=r"not enough room .* need 1088 MiB, 16 MiB free"):
        D.dump_elf(qmp, tmp_path / "d", 1024 * MiB, statvfs=statvfs_with(16 * MiB))
    with pytest.raises(DumpError, match="not enough room"):
        D.dump_pmemsave(qmp, tmp_path / "d", D.ram_ranges(1024 * MiB), statvfs=statvfs_with(512 * MiB))
    assert qmp.calls == [] and list((tmp_path / "d").iterdir()) == []




def test_real_small_tmpfs_refused_before_qemu_is_asked(small_tmpfs: Path) -> None:
    qmp = FakeQmp()
    with pytest.raises(DumpError, match="not enough room"):
        D.acquire_and_scan("elf", qmp=qmp, pid=os.getpid(), ram_bytes=64 * MiB, needles=[NEEDLE],
                           folder=small_tmpfs / "dumps")
    assert qmp.calls == []
    assert list((small_tmpfs / "dumps").iterdir()) == []


@pytest.mark.parametrize("how", ["qmp-refuses", "event-error"])
def test_failed_dump_leaves_no_file(tmp_path: Path, how: str) -> None:
    qmp = FakeQmp(fail="dump-guest-memory") if how == "qmp-refuses" else FakeQmp(dump_error="No space left")
    with pytest.raises(DumpError) as ei:
        D.dump_elf(qmp, tmp_path, 1 * MiB)
    assert ("injected" if how == "qmp-refuses" else "No space left") in str(ei.value)
    assert list(tmp_path.iterdir()) == []


def test_pmemsave_failure_removes_partial_files(tmp_path: Path) -> None:
    qmp = FakeQmp(fail="pmemsave")
    with pytest.raises(DumpError, match="pmemsave"):
        D.dump_pmemsave(qmp, tmp_path, D.ram_ranges(1 * MiB))
    assert list(tmp_path.iterdir()) == []


def test_not_an_elf_is_a_dump_error_and_file_removed(tmp_path: Path) -> None:
    class WritesJunk(FakeQmp):
        def execute(self, cmd: str, args: Mapping[str, object] | None = None, timeout: float = 30.0) -> Any:
            if cmd == "dump-guest-memory":
                Path(str(args["protocol"])[5:]).write_bytes(b"junk" * 100)  # type: ignore[index]
                return {}
            return super().execute(cmd, args, timeout)
    with pytest.raises(DumpError, match="not an ELF"):
        D.acquire_and_scan("elf", qmp=WritesJunk(), pid=0, ram_bytes=1 * MiB, needles=[NEEDLE], folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- /proc/<pid>/mem on a real process ------------------------------------------------------



@pytest.fixture
def child_ram() -> Iterator[tuple[int, int, int]]:
    """A real process holding 8 MiB of 'guest RAM' with the needle at known offsets."""
    size = 8 * MiB
    p = subprocess.Popen([sys.executable, "-c", CHILD, NEEDLE.hex(), str(size)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        addr = int(p.stdout.readline(), 16)
        yield p.pid, addr, size
    finally:
        p.kill()
        p.wait(10)


@pytest.mark.parametrize("chunk", [4096, 1 * MiB, 16 * MiB])
def test_procmem_streams_a_real_process(child_ram: tuple[int, int, int], chunk: int) -> None:
    pid, addr, size = child_ram
    qmp = FakeQmp(hva=addr)
    control = os.urandom(32)
    ms = D.scan_procmem(pid, qmp, D.ram_ranges(size), [NEEDLE, control], chunk=chunk)
    assert [h.gpa for h in ms.hits(NEEDLE)] == [0, 3 * 4096 - 10, size // 2, size - len(NEEDLE)]
    assert ms.count(control) == 0
    assert ms.coverage.bytes_read == size and ms.coverage.complete
    summary = json.dumps(ms.to_json())
    assert NEEDLE.hex() not in summary and "sha256:" in summary


def test_procmem_default_and_unreadable_pid() -> None:
    assert D.default_method(os.getpid(), 0) == "procmem"
    assert D.default_method(2 ** 22 + 12345, 0) == "elf"   # no such process: fall back to the ELF dump
    with pytest.raises(DumpError, match="maps"):
        D.scan_procmem(2 ** 22 + 12345, FakeQmp(), D.ram_ranges(MiB), [NEEDLE])


def test_guest_memfd_decided_from_the_qemu_process(tmp_path: Path) -> None:
    """virt/kvm/guest_memfd.c __kvm_gmem_create(): anon_inode_create_getfile("[kvm-gmem]", ...) -> the fd
    link reads "anon_inode:[kvm-gmem]". SYNTHETIC /proc tree: fd links with the kernel's exact names."""
    fd = tmp_path / "4242" / "fd"
    fd.mkdir(parents=True)
    for n, target in ((0, "/dev/null"), (11, "anon_inode:kvm-vm"), (12, "anon_inode:[kvm-gmem]"),
                      (13, "/memfd:ram (deleted)")):
        (fd / str(n)).symlink_to(target)
    assert G.guest_memfds(4242, tmp_path) == ["12 -> anon_inode:[kvm-gmem]"]
    readable, why = G.private_memory_view("sev-snp", 4242, tmp_path)
    assert readable is False and "anon_inode:[kvm-gmem]" in why and "pid 4242" in why
    (fd / "12").unlink()
    assert G.private_memory_view("sev-snp", 4242, tmp_path)[0] is True    # SNP without guest_memfd
    assert G.private_memory_view("sev-es", os.getpid())[0] is True        # this process: real /proc, none
    with pytest.raises(DumpError, match="cannot list"):
        G.guest_memfds(2 ** 22 + 12345)
    cov = D.Coverage("procmem", MiB, [D.RamRange(0, MiB)], private_readable=False)
    assert not cov.complete and cov.to_json()["private_memory_readable_by_host"] is False


# --- registers ---------------------------------------------------------------------------------

# HMP "info registers" of QEMU 7.2 (TCG, q35), captured on this machine with the vCPU at reset.
RESET_REGS = """
CPU#0
EAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1
ESI=00000000 EDI=00000000 EBP=00000000 ESP=00000000
EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
CR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000
"""
LONG_MODE = """
CPU#0
RAX=0000000000000000 RBX=ffffffff82a0c940 RCX=0000000000000001 RDX=0000000000000000
RIP=ffffffff81f6a4ab RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
CR0=80050033 CR2=00007f1d2c3a8000 CR3=0000000003a1c000 CR4=00350ef0
EFER=0000000000000d01
"""


def test_register_judgement() -> None:
    reset = parse_registers(RESET_REGS)
    assert reset["CR0"] == 0x60000010 and "RIP" not in reset
    live = parse_registers(LONG_MODE)
    assert live["RIP"] == 0xFFFFFFFF81F6A4AB and live["CR3"] == 0x3A1C000
    assert RegisterView([live, live]).live is True
    assert RegisterView([reset]).live is False
    assert RegisterView([]).live is False   # no answer is not "visible"
    assert RegisterView([{"RIP": 0, "CR0": 0x80000011, "CR3": 0}]).live is False


# --- planting, run for real in a local shell --------------------------------------------------

class LocalShell:
    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        t0 = time.monotonic()
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        return CommandResult(cmd, p.stdout, p.returncode, time.monotonic() - t0, p.stderr, "local")


class RecordingShell(LocalShell):
    def __init__(self) -> None:
        self.sent: list[str] = []

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        self.sent.append(cmd)
        return super().run(cmd, timeout)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_secret_derivation_is_deterministic_and_distinct() -> None:
    s = P.Secret.fresh()
    assert s.needle == P.Secret(s.seed, s.tag).needle and len(s.needle) == P.SECRET_LEN
    assert s.control != s.needle and P.Secret.fresh().needle != s.needle
    assert s.seed.hex() not in repr(s) and s.needle.hex() not in repr(s)


@pytest.mark.skipif(shutil.which("setsid") is None or not Path("/dev/shm").is_dir(), reason="needs setsid and /dev/shm")
def test_plant_locally_for_real() -> None:
    shell = RecordingShell()
    s = P.Secret.fresh()
    planted = P.plant(shell, s, copies=32, timeout=60)
    try:
        assert planted.copies_anon == 32 and planted.copies_tmpfs == 32
        assert Path(planted.tmpfs_file).read_bytes().count(s.needle) == 32
        os.kill(planted.pid, 0)   # still alive after the shell returned
        # the copies' physical pages from the planter's own pagemap (root sees PFNs), one page per copy,
        # and SIGUSR1 reads them again (nothing moved in between here)
        if os.geteuid() == 0:
            assert len(planted.anon_gpas) == 32 and all(g is not None and g % 4096 == 64 for g in planted.anon_gpas)
            assert len(planted.tmpfs_gpas) == 32 and all(g is not None for g in planted.tmpfs_gpas)
            assert len(planted.pages) == 64 and set(planted.pages.values()) == {"anon", "tmpfs"}
            assert P.relocate(shell, planted) == (planted.anon_gpas, planted.tmpfs_gpas)
        # the secret never crossed the shell: only the seed and the script did
        assert not any(s.needle.hex() in c or s.needle[:16].hex() in c for c in shell.sent)
    finally:
        P.unplant(shell, planted)
    deadline = time.monotonic() + 10
    while alive(planted.pid):   # PID 1 here may not reap: a zombie counts as gone
        if time.monotonic() > deadline:
            pytest.fail("planter still running after unplant")
        time.sleep(0.05)
    assert not Path(planted.tmpfs_file).exists()


def test_guest_memfd_coverage_names_the_unreadable_ranges(child_ram: tuple[int, int, int], tmp_path: Path) -> None:
    pid, addr, size = child_ram
    readable, why = False, "SYNTHETIC: QEMU holds guest_memfd descriptors (12 -> anon_inode:[kvm-gmem])"
    ms = D.acquire_and_scan("procmem", qmp=FakeQmp(hva=addr), pid=pid, ram_bytes=size, needles=[NEEDLE],
                            folder=tmp_path, private_readable=readable, private_reason=why)
    cov = ms.coverage.to_json()
    assert cov["private_memory_readable_by_host"] is False and cov["complete"] is False
    assert cov["private_unreadable_ranges"] == [{"gpa": "0x0", "size": size}]
    assert any("guest_memfd" in n for n in cov["notes"])
    assert cov["bytes_read"] == size   # the shared view was read, and it says so
