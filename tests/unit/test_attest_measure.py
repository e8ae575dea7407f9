"""Expected launch measurement through sev-snp-measure, with the inputs sevkit's launcher really
passes: the OVMF it finds on this host (sevkit.qemu.firmware), the guest image's kernel, initrd
and command line (sevkit.image), the vCPU count and type of the GuestSpec.

Debian's OVMF has no SNP_KERNEL_HASHES section, so measured direct boot cannot be predicted with
it: that must surface as a MeasurementError naming the firmware. The successful paths are checked
against an independent computation (SEV: SHA-256 of the firmware) or sev-snp-measure's own CLI.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.launch import bios as _bios
from helpers.launch import guest_image as _guest_image
from helpers.launch import snp_spec as _snp_spec

from sevkit.attestation.measure import LaunchInputs, expected_measurement
from sevkit.errors import MeasurementError
from sevkit.qemu.firmware import find_pflash
from sevkit.qemu.spec import GuestSpec


def test_snp_measured_direct_boot_on_debian_ovmf_is_a_clear_error() -> None:
    spec = _snp_spec()
    with pytest.raises(MeasurementError) as exc:
        expected_measurement(LaunchInputs.from_spec(spec))
    msg = str(exc.value)
    assert str(spec.firmware.image) in msg and "SNP_KERNEL_HASHES" in msg
    assert exc.value.evidence["kernel"] == str(spec.kernel) and exc.value.evidence["kernel_hashes"] is True


def test_sev_measured_direct_boot_on_debian_pflash_is_a_clear_error() -> None:
    img = _guest_image()
    fw = find_pflash()
    assert fw is not None and fw.code is not None
    inp = LaunchInputs(mode="sev", ovmf=fw.code, kernel=img.kernel, initrd=img.initrd, append=img.append,
                       kernel_hashes=True)
    with pytest.raises(MeasurementError, match="doesn't support kernel/initrd/cmdline measurement"):
        expected_measurement(inp)


def test_snp_without_kernel_hashes_matches_sev_snp_measure_cli() -> None:
    """kernel-hashes off: the kernel is not measured, so the digest covers OVMF + VMSAs only."""
    spec = _snp_spec(kernel_hashes=False)
    digest = expected_measurement(LaunchInputs.from_spec(spec))
    assert len(digest) == 48
    cli = shutil.which("sev-snp-measure", path=str(Path(sys.executable).parent))
    assert cli, "sev-snp-measure CLI is installed with the package"
    out = subprocess.run([cli, "--mode", "snp", "--vcpus", "2", "--vcpu-type", "EPYC-v4",
                          "--ovmf", str(spec.firmware.image)], capture_output=True, text=True, timeout=120,
                         check=True).stdout.strip()
    assert digest.hex() == out


def test_sev_firmware_only_digest_is_sha256_of_the_firmware() -> None:
    fw = find_pflash()
    assert fw is not None and fw.code is not None
    digest = expected_measurement(LaunchInputs(mode="sev", ovmf=fw.code))
    assert digest == hashlib.sha256(fw.code.read_bytes()).digest()


def test_input_errors_are_typed() -> None:
    fw = _bios().image
    assert fw is not None
    with pytest.raises(MeasurementError, match="vCPU type 'max' unknown"):
        expected_measurement(LaunchInputs(mode="sev-snp", ovmf=fw, vcpu_type="max"))
    with pytest.raises(MeasurementError, match="does not exist"):
        expected_measurement(LaunchInputs(mode="sev-snp", ovmf=Path("/nonexistent/OVMF.fd")))
    with pytest.raises(MeasurementError, match="unknown mode"):
        expected_measurement(LaunchInputs(mode="tdx", ovmf=fw))
    with pytest.raises(MeasurementError, match="not OVMF"):
        LaunchInputs.from_spec(GuestSpec(kind="plain", disk=Path("/dev/null")))
