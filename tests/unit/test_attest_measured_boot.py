"""Measured direct boot (kernel-hashes=on) for SEV-SNP: when it is possible and what it measures.

``craft_ovmf`` writes a SYNTHETIC, minimal OVMF-like file (not firmware, nothing boots it): a footer
GUID table with the SEV-ES reset block, the SEV hash table and SEV metadata whose sections include
SNP_KERNEL_HASHES, laid out as in OvmfPkg/ResetVector (offsets from the end of the file). Comparing
sevkit.attestation.measure with the sev-snp-measure CLI on it proves that sevkit passes the kernel,
initrd and command line to the tool, not that the tool is right (same tool, two entry points).
The "no kernel hashes" side uses this machine's real Debian OVMF.fd.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.ovmf import AMDSEV_X64, craft_ovmf

from sevkit.attestation.measure import (
    LaunchInputs,
    expected_measurement,
    inspect_firmware,
    snp_measured_boot_support,
)
from sevkit.host.ovmf import KERNEL_LOADER

DEBIAN_COMBINED = Path("/usr/share/ovmf/OVMF.fd")

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
