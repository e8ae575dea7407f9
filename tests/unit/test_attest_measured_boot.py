"""Measured direct boot (kernel-hashes=on) for SEV-SNP: when it is possible and what it measures.

``craft_ovmf`` writes a SYNTHETIC, minimal OVMF-like file (not firmware, nothing boots it): a footer
GUID table with the SEV-ES reset block, the SEV hash table and SEV metadata whose sections include
SNP_KERNEL_HASHES, laid out as in OvmfPkg/ResetVector (offsets from the end of the file). Comparing
sevkit.attestation.measure with the sev-snp-measure CLI on it proves that sevkit passes the kernel,
initrd and command line to the tool, not that the tool is right (same tool, two entry points).
The "no kernel hashes" side uses this machine's real Debian OVMF.fd.
"""

from __future__ import annotations

import lzma
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sevkit.attestation.measure import (
    LaunchInputs,
    expected_measurement,
    inspect_firmware,
    snp_measured_boot_support,
)
from sevkit.host.collector import LZMA_SECTION_GUID
from sevkit.host.ovmf import (
    AMDSEV_ONLY_FILES,
    FFS2_FV,
    FOOTER,
    KERNEL_LOADER,
    SEV_ES_RESET_BLOCK,
    SEV_HASH_TABLE,
    SEV_METADATA,
)

DEBIAN_COMBINED = Path("/usr/share/ovmf/OVMF.fd")
HASH_TABLE_GPA = 0x80CC00


def _section(stype: int, body: bytes) -> bytes:
    return (4 + len(body)).to_bytes(3, "little") + bytes([stype]) + body


def _ffs(name: str, ftype: int, sections: bytes) -> bytes:
    hdr = uuid.UUID(name).bytes_le + b"\0\0" + bytes([ftype, 0]) + (24 + len(sections)).to_bytes(3, "little") + b"\xf8"
    out = hdr + sections
    return out + b"\xff" * (-len(out) % 8)


def _fv(files: bytes) -> bytes:
    """EFI_FIRMWARE_VOLUME_HEADER (FFS2 file system, one block-map entry + terminator) + files."""
    hlen = 56 + 16
    length = hlen + len(files)
    hdr = (bytes(16) + uuid.UUID(FFS2_FV).bytes_le + struct.pack("<Q", length) + b"_FVH"
           + struct.pack("<IHHHBB", 0x0004FEFF, hlen, 0, 0, 0, 2) + struct.pack("<II", 1, length) + bytes(8))
    return hdr + files


def craft_volumes(names: list[str]) -> bytes:
    """SYNTHETIC firmware volumes shaped like OVMF's: a FVMAIN_COMPACT whose FV_IMAGE file holds an
    LZMA GUID-defined section (MdeModulePkg gLzmaCustomDecompressGuid) around a DXEFV holding one
    driver file per name (PI spec vol. 3 headers)."""
    inner = _fv(b"".join(_ffs(n, 0x07, _section(0x19, b"SYNTHETIC driver")) for n in names))
    packed = lzma.compress(_section(0x17, inner), format=lzma.FORMAT_ALONE)
    guided = _section(0x02, uuid.UUID(LZMA_SECTION_GUID).bytes_le + struct.pack("<HH", 24, 1) + packed)
    return _fv(_ffs("9e21fd93-9c72-4c15-8c4b-e77f1db2d792", 0x0B, guided))


def craft_ovmf(path: Path, *, snp_kernel_hashes: bool = True, hash_gpa: int = HASH_TABLE_GPA,
               size: int = 64 << 10, files: list[str] | None = None) -> Path:
    """SYNTHETIC OVMF-like file of ``size`` bytes (a page multiple) with an SNP GUID table, and
    ``files`` (FFS file GUIDs) in OVMF-shaped volumes at its start (default: none)."""
    sections = [(0x800000, 0x9000, 1), (0x80D000, 0x1000, 2), (0x80E000, 0x1000, 3)]   # SEC_MEM, SECRETS, CPUID
    if snp_kernel_hashes:
        sections.append((hash_gpa & ~0xFFF, 0x1000, 0x10))   # the page holding the hash table
    meta = b"ASEV" + struct.pack("<III", 16 + 12 * len(sections), 1, len(sections)) + b"".join(
        struct.pack("<III", *s) for s in sections)

    def entry(guid: str, data: bytes) -> bytes:
        return data + struct.pack("<H", 18 + len(data)) + uuid.UUID(guid).bytes_le

    def tail(meta_off: int) -> bytes:
        body = (entry(SEV_ES_RESET_BLOCK, struct.pack("<I", 0x80B004))
                + entry(SEV_HASH_TABLE, struct.pack("<II", hash_gpa, 0x400 if hash_gpa else 0))
                + entry(SEV_METADATA, struct.pack("<I", meta_off)))
        return meta + body + struct.pack("<H", 18 + len(body)) + uuid.UUID(FOOTER).bytes_le + bytes(32)

    end = tail(0)
    end = tail(len(end))                      # metadata offset counts back from the end of the file
    head = craft_volumes(files) if files is not None else b""
    path.write_bytes(head + b"\xff" * (size - len(end) - len(head)) + end)
    return path


AMDSEV_X64 = [*AMDSEV_ONLY_FILES, KERNEL_LOADER]      # what AmdSevX64.fdf puts in its volumes (the markers)


@pytest.fixture
def launch_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "vmlinuz").write_bytes(b"SYNTHETIC kernel " * 1000)
    (tmp_path / "initrd.img").write_bytes(b"SYNTHETIC initrd " * 500)
    return {"ovmf": craft_ovmf(tmp_path / "OVMF.amdsev.fd", files=AMDSEV_X64), "kernel": tmp_path / "vmlinuz",
            "initrd": tmp_path / "initrd.img"}


def test_crafted_firmware_reads_as_snp_with_kernel_hashes(launch_files: dict[str, Path]) -> None:
    img = inspect_firmware(launch_files["ovmf"])
    assert (img.error, img.snp, img.kernel_hashes, img.snp_kernel_hashes) == (None, True, True, True)
    mb = snp_measured_boot_support(launch_files["ovmf"], launch_files["kernel"])
    assert mb.supported and mb.source == "parsed"


def test_measured_but_not_enforced_is_told_apart_by_the_volumes(tmp_path: Path) -> None:
    """Issue 9 item 5: same SNP_KERNEL_HASHES section, different build. AmdSevX64's volumes carry
    SecretPei, SecretDxe and Grub (edk2 OvmfPkg/AmdSev/AmdSevX64.fdf; no other .fdf has them) and its
    kernel loader links BlobVerifierLibSevHashes; OvmfPkgX64's loader links BlobVerifierLibNull."""
    amdsev = snp_measured_boot_support(craft_ovmf(tmp_path / "amdsev.fd", files=AMDSEV_X64), tmp_path)
    assert amdsev.supported and amdsev.enforced is True and amdsev.enforcement.startswith("enforced")
    assert {f.split()[0] for f in amdsev.image["amdsev_files"]} == {"SecretPei", "SecretDxe", "Grub"}  # type: ignore[index]
    x64 = snp_measured_boot_support(craft_ovmf(tmp_path / "x64.fd", files=[KERNEL_LOADER]), tmp_path)
    assert x64.supported and x64.enforced is False
    assert x64.enforcement.startswith("measured, not enforced") and "BlobVerifierLibNull" in x64.enforcement
    unread = snp_measured_boot_support(craft_ovmf(tmp_path / "bare.fd"), tmp_path)
    assert unread.supported and unread.enforced is None and "not determined" in unread.enforcement


def test_debian_ovmf_volumes_are_read_and_it_is_not_an_amdsev_build() -> None:
    """The FV walker on REAL firmware (Debian 12 OVMF, an OvmfPkgX64 build): it finds the files its
    OvmfPkgX64.fdf lists, QemuKernelLoaderFsDxe among them, inside the LZMA-compressed DXEFV, and
    none of the AmdSevX64-only files."""
    if not DEBIAN_COMBINED.is_file():
        pytest.fail(f"{DEBIAN_COMBINED} missing: install Debian's ovmf package (scripts/host-deps.sh)")
    img = inspect_firmware(DEBIAN_COMBINED)
    assert img.ffs_error is None and img.ffs_files > 100 and img.kernel_loader is True
    assert img.amdsev_files == () and img.hashes_enforced is False


def test_debian_ovmf_cannot_measure_a_kernel_and_says_why() -> None:
    if not DEBIAN_COMBINED.is_file():
        pytest.fail(f"{DEBIAN_COMBINED} missing: install Debian's ovmf package (scripts/host-deps.sh)")
    mb = snp_measured_boot_support(DEBIAN_COMBINED, Path("/boot/vmlinuz"))
    assert not mb.supported and mb.source == "parsed"
    assert "SNP_KERNEL_HASHES" in mb.why and "GPA" in mb.why
    assert mb.image is not None and mb.image["snp"] is True   # SNP-capable, just not measured boot


def test_missing_pieces_each_disable_measured_boot(tmp_path: Path) -> None:
    no_section = snp_measured_boot_support(craft_ovmf(tmp_path / "a.fd", snp_kernel_hashes=False), tmp_path)
    assert not no_section.supported and "SNP_KERNEL_HASHES" in no_section.why
    no_table = snp_measured_boot_support(craft_ovmf(tmp_path / "b.fd", hash_gpa=0), tmp_path)
    assert not no_table.supported and "non-zero GPA" in no_table.why
    disk = snp_measured_boot_support(tmp_path / "a.fd", None)
    assert not disk.supported and "boots from disk" in disk.why
    gone = snp_measured_boot_support(tmp_path / "nonexistent.fd", tmp_path)
    assert not gone.supported and "not parseable" in gone.why


def test_probe_finding_is_used_for_the_same_file(tmp_path: Path) -> None:
    fw = craft_ovmf(tmp_path / "OVMF.fd")
    probed = inspect_firmware(craft_ovmf(tmp_path / "other.fd", snp_kernel_hashes=False))
    # the probe's image is another file: the chosen one is parsed
    assert snp_measured_boot_support(fw, tmp_path, [probed]).source == "parsed"
    mine = inspect_firmware(fw)
    assert snp_measured_boot_support(fw, tmp_path, [probed, mine]).source == "host probe"


def _cli(*args: str) -> str:
    cli = shutil.which("sev-snp-measure", path=str(Path(sys.executable).parent))
    assert cli, "sev-snp-measure CLI is installed with the package"
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=120, check=True).stdout.strip()


def test_measured_direct_boot_digest_matches_sev_snp_measure_cli(launch_files: dict[str, Path]) -> None:
    """kernel-hashes on: sevkit hands kernel, initrd and append to the tool exactly as its CLI does."""
    append = "root=LABEL=sevroot ro console=ttyS0,115200"
    inp = LaunchInputs(mode="sev-snp", ovmf=launch_files["ovmf"], vcpus=2, vcpu_type="EPYC-v4",
                       kernel=launch_files["kernel"], initrd=launch_files["initrd"], append=append,
                       kernel_hashes=True)
    digest = expected_measurement(inp)
    cli = _cli("--mode", "snp", "--vcpus", "2", "--vcpu-type", "EPYC-v4", "--ovmf", str(launch_files["ovmf"]),
               "--kernel", str(launch_files["kernel"]), "--initrd", str(launch_files["initrd"]), "--append", append)
    assert digest.hex() == cli
    # each of kernel, initrd and command line is in the digest; without kernel-hashes none is
    firmware_only = _cli("--mode", "snp", "--vcpus", "2", "--vcpu-type", "EPYC-v4",
                         "--ovmf", str(launch_files["ovmf"]))
    off = expected_measurement(LaunchInputs(**{**_fields(inp), "kernel_hashes": False}))
    assert off.hex() == firmware_only != cli
    other_append = expected_measurement(LaunchInputs(**{**_fields(inp), "append": append + " quiet"}))
    no_initrd = expected_measurement(LaunchInputs(**{**_fields(inp), "initrd": None}))
    assert len({digest, off, other_append, no_initrd}) == 4


def _fields(inp: LaunchInputs) -> dict[str, object]:
    return {k: getattr(inp, k) for k in LaunchInputs.__slots__}  # type: ignore[attr-defined]


def test_from_spec_takes_kernel_hashes_from_the_launched_spec(launch_files: dict[str, Path]) -> None:
    from sevkit.qemu.spec import Firmware, GuestSpec
    spec = GuestSpec(kind="sev-snp", accel="kvm", qemu_version=(9, 1, 0), cpu="EPYC-v4", vcpus=2,
                     firmware=Firmware("bios", image=launch_files["ovmf"]), kernel=launch_files["kernel"],
                     initrd=launch_files["initrd"], append="console=ttyS0", cbitpos=51, reduced_phys_bits=1,
                     kernel_hashes=True)
    inp = LaunchInputs.from_spec(spec)
    assert (inp.ovmf, inp.kernel, inp.initrd, inp.append, inp.kernel_hashes, inp.vcpus, inp.vcpu_type) == (
        launch_files["ovmf"], launch_files["kernel"], launch_files["initrd"], "console=ttyS0", True, 2, "EPYC-v4")
