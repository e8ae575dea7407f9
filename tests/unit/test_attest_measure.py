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

from sevkit.attestation.measure import LaunchInputs, expected_measurement
from sevkit.errors import MeasurementError
from sevkit.qemu.firmware import find_bios, find_pflash
from sevkit.qemu.spec import Firmware, GuestSpec


def _bios() -> Firmware:
    fw = find_bios()
    if fw is None or fw.image is None:
        pytest.fail("no combined OVMF image on this host (scripts/host-deps.sh installs ovmf)")
    return fw


def _guest_image():  # type: ignore[no-untyped-def]
    """The current recipe's image, else any complete sevkit image in the store (same kind of files)."""
    from sevkit.errors import InputError
    from sevkit.image import default_store, find_image, load_image_spec
    img = find_image()
    if img is None and default_store().is_dir():
        for d in sorted(default_store().iterdir()):
            if d.name.startswith(".") or not (d / "image.json").is_file():
                continue
            try:
                img = load_image_spec(d)
            except InputError:
                continue
            if img.kernel.is_file() and img.initrd.is_file():
                break
            img = None
    if img is None:
        pytest.skip("no guest image built yet (make image); the launcher's kernel/initrd are needed")
    return img


def _snp_spec(**kw: object) -> GuestSpec:
    img = _guest_image()
    args: dict[str, object] = dict(kind="sev-snp", accel="kvm", qemu_version=(9, 1, 0), cpu="EPYC-v4", vcpus=2,
                                   firmware=_bios(), kernel=img.kernel, initrd=img.initrd, append=img.append,
                                   disk=img.disk, cbitpos=51, reduced_phys_bits=1, kernel_hashes=True)
    args.update(kw)
    return GuestSpec(**args)  # type: ignore[arg-type]


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
