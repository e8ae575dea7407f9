"""The positive control for real: a plain Debian guest under TCG (OVMF + direct kernel boot), a secret
planted from a seed, read back through all three methods.

With the guest paused during the reads, guest memory is frozen, so the three methods must agree
exactly: the gpas of the ELF dump's hits (from its PT_LOAD headers) equal the pmemsave file
offsets of its hits and the /proc/<pid>/mem gpas. One boot for the whole module (~25 s).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.launch import built_image_and_pflash

from sevkit.errors import DumpError
from sevkit.evidence import ArtifactDir
from sevkit.guests import boot_with_tcg_retry
from sevkit.image.credentials import make_credentials
from sevkit.memory import dump as D
from sevkit.memory.plant import Planted, Secret, plant, relocate, unplant
from sevkit.memory.registers import read_registers
from sevkit.qemu.machine import GuestAccess, GuestVM
from sevkit.qemu.spec import GuestSpec

pytestmark = pytest.mark.qemu
RAM_MIB = 1024


@pytest.fixture(scope="module")
def plain_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestVM]:
    image, fw = built_image_and_pflash()
    root = Path(tempfile.mkdtemp(prefix="sevkit-memt-"))
    try:
        creds = make_credentials(root / "cred")
        access = GuestAccess.from_credentials(creds)
        spec = GuestSpec(kind="plain", name="memtest", memory_mib=RAM_MIB, firmware=fw, kernel=image.kernel,
                         initrd=image.initrd, append=image.append, disk=image.disk,
                         disk_format=image.disk_format, fw_cfg=tuple(creds.fw_cfg))
        ev = ArtifactDir(tmp_path_factory.mktemp("memt-evidence"))
        vms: list[GuestVM] = []
        try:
            vm = boot_with_tcg_retry(lambda: GuestVM(spec, evidence=ev, run_root=root, access=access), vms.append)
            yield vm
        finally:
            for v in vms:
                v.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def planted(plain_vm: GuestVM) -> Iterator[Planted]:
    p = plant(plain_vm.ssh, Secret.fresh(), timeout=120)
    try:
        yield p
    finally:
        unplant(plain_vm.ssh, p)


def test_three_methods_agree_on_the_secret_gpas(plain_vm: GuestVM, planted: Planted, tmp_path: Path) -> None:
    s = planted.secret
    assert planted.copies_anon >= 256 and planted.copies_tmpfs >= 256
    qmp, pid = plain_vm.qmp, plain_vm.pid
    assert qmp is not None and pid is not None
    scans: dict[str, D.MemoryScan] = {}
    qmp.execute("stop")   # freeze guest memory so that the methods can be compared exactly
    try:
        for method in D.METHODS:
            scans[method] = D.acquire_and_scan(method, qmp=qmp, pid=pid, ram_bytes=RAM_MIB << 20,
                                               needles=[s.needle, s.control], folder=tmp_path / "dumps")
    finally:
        qmp.execute("cont")
    gpas = {m: sorted(h.gpa for h in ms.hits(s.needle) if h.gpa is not None) for m, ms in scans.items()}
    for m, ms in scans.items():
        assert ms.count(s.needle) >= 1, f"{m}: this dump method cannot see guest memory"
        assert ms.count(s.control) == 0, m
        assert ms.coverage.complete and ms.coverage.bytes_read == RAM_MIB << 20, ms.coverage.to_json()
        print(f"{m}: {ms.count(s.needle)} hits, acquire {ms.acquire_seconds:.2f}s, scan {ms.scan_seconds:.2f}s")
    assert gpas["elf"] == gpas["pmemsave"] == gpas["procmem"]
    # pmemsave of RAM from gpa 0 is a flat image: its file offset of a hit *is* the gpa
    assert [h.offset for h in scans["pmemsave"].hits(s.needle)] == gpas["pmemsave"]
    # and the ELF's offsets are file offsets, mapped through PT_LOAD (never equal to the gpa here)
    assert all(h.offset != h.gpa for h in scans["elf"].hits(s.needle))
    assert not (tmp_path / "dumps").exists() or list((tmp_path / "dumps").iterdir()) == []


def test_secret_pages_seen_by_every_method(plain_vm: GuestVM, planted: Planted, tmp_path: Path) -> None:
    """The guest names the pages that hold its copies (pagemap); in the plain guest every method shows
    the secret at every one of them, and those pages are among the full scan's hits."""
    s = planted.secret
    qmp, pid = plain_vm.qmp, plain_vm.pid
    assert qmp is not None and pid is not None
    pages = planted.pages
    assert len(pages) == planted.copies_anon + planted.copies_tmpfs, planted.to_json()
    qmp.execute("stop")
    try:
        views = {m: D.examine_pages(m, qmp=qmp, pid=pid, ram_bytes=RAM_MIB << 20, pages=pages, needle=s.needle,
                                    folder=tmp_path / "p") for m in D.METHODS}
        full = D.acquire_and_scan("procmem", qmp=qmp, pid=pid, ram_bytes=RAM_MIB << 20, needles=[s.needle],
                                  folder=tmp_path / "f")
    finally:
        qmp.execute("cont")
    for m, vs in views.items():
        assert [v.gpa for v in vs] == sorted(pages), m
        assert all(v.outcome == "secret" for v in vs), (m, [v.to_json() for v in vs if v.outcome != "secret"][:5])
    assert set(pages) <= {h.gpa & ~0xFFF for h in full.hits(s.needle) if h.gpa is not None}
    anon, tmpfs = relocate(plain_vm.ssh, planted)
    assert (anon, tmpfs) == (planted.anon_gpas, planted.tmpfs_gpas)   # nothing moved in between
    print(f"{len(pages)} pages, e.g. {[v.to_json() for v in views['elf'][:2]]}")


def test_elf_gpa_bytes_in_a_kept_pmemsave_file(plain_vm: GuestVM, planted: Planted, tmp_path: Path) -> None:
    """Byte-level cross-check with kept dumps: at every gpa the ELF dump reports, the raw
    pmemsave image holds the secret."""
    s = planted.secret
    qmp, pid = plain_vm.qmp, plain_vm.pid
    assert qmp is not None and pid is not None
    qmp.execute("stop")
    try:
        elf = D.acquire_and_scan("elf", qmp=qmp, pid=pid, ram_bytes=RAM_MIB << 20, needles=[s.needle],
                                 folder=tmp_path / "d")
        D.acquire_and_scan("pmemsave", qmp=qmp, pid=pid, ram_bytes=RAM_MIB << 20, needles=[s.needle],
                           folder=tmp_path / "d", keep=True)
    finally:
        qmp.execute("cont")
    (raw,) = (tmp_path / "d").glob("pmem-0x0-*.raw")
    assert (raw.stat().st_mode & 0o777) == 0o600
    with open(raw, "rb") as fh:
        for h in elf.hits(s.needle):
            assert h.gpa is not None
            fh.seek(h.gpa)
            assert fh.read(len(s.needle)) == s.needle, f"gpa {h.gpa:#x}"
    D.remove_dumps([raw])


def test_default_method_is_procmem_here(plain_vm: GuestVM) -> None:
    assert plain_vm.pid is not None
    assert D.default_method(plain_vm.pid, RAM_MIB << 20) == "procmem"   # root: no dump file needed


def test_plain_guest_registers_are_live(plain_vm: GuestVM) -> None:
    assert plain_vm.qmp is not None
    view = read_registers(plain_vm.qmp)
    assert view.live, view.to_json()




@pytest.mark.parametrize("method", ["elf", "pmemsave"])
def test_guest_dump_into_too_small_folder(plain_vm: GuestVM, planted: Planted, small_tmpfs: Path,
                                          method: str) -> None:
    assert plain_vm.qmp is not None and plain_vm.pid is not None
    with pytest.raises(DumpError, match=r"not enough room .* need \d+ MiB, 16 MiB free"):
        D.acquire_and_scan(method, qmp=plain_vm.qmp, pid=plain_vm.pid, ram_bytes=RAM_MIB << 20,
                           needles=[planted.secret.needle], folder=small_tmpfs / "dumps")
    assert list((small_tmpfs / "dumps").iterdir()) == []
    assert plain_vm.run("true", via="ssh").ok   # the guest is unharmed
