"""The expected launch measurement, computed by sev-snp-measure (sev-facts §10.2) from exactly what
the launcher used. Not reimplemented here: we only translate inputs and errors.

For measured direct boot (QEMU ``kernel-hashes=on``) the kernel, initrd and command line are
measured; without it they must not be passed. An OVMF without the SNP kernel-hashes section
(Debian's, for one) cannot measure a kernel: that is a MeasurementError naming the firmware.
``snp_measured_boot_support`` says beforehand, by the firmware's content, whether it can.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MeasurementError
from ..vocab import GuestKind
from .hostcpu import vcpu_sig

if TYPE_CHECKING:
    from ..host.cpu import Signature
    from ..host.ovmf import OvmfImage
    from ..qemu.spec import GuestSpec

# sevsnpmeasure SevMode member per guest kind.
MODES: dict[str, str] = {GuestKind.SEV: "SEV", GuestKind.SEV_ES: "SEV_ES", GuestKind.SEV_SNP: "SEV_SNP"}


@dataclass(frozen=True, slots=True)
class LaunchInputs:
    """What the launcher passed to QEMU. ``vcpu_type`` is the ``-cpu`` model (e.g. EPYC-v4);
    ``vcpu_sig`` overrides it (``-cpu host``: the host's CPUID signature)."""

    mode: str                        # sev, sev-es, sev-snp
    ovmf: Path
    vcpus: int = 1
    vcpu_type: str = "EPYC-v4"
    vcpu_sig: int | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    append: str | None = None
    kernel_hashes: bool = False      # QEMU kernel-hashes=on
    guest_features: int = 0x1        # VMSA SEV_FEATURES (0x1 = SNPActive; QEMU debug-swap=on -> 0x21)
    vmm_type: str = "QEMU"

    @classmethod
    def from_spec(cls, spec: GuestSpec, *, guest_features: int = 0x1,
                  host_cpu: Signature | None = None) -> LaunchInputs:
        """Exactly what sevkit's launcher (sevkit.qemu.GuestSpec) passes to QEMU. ``host_cpu`` (the
        host probe's CPUID signature) gives ``-cpu host`` its vcpu_sig (hostcpu.py says why)."""
        fw = spec.firmware
        ovmf = fw.image if fw.kind == "bios" else fw.code
        if ovmf is None:
            raise MeasurementError(f"{spec.name}: firmware {fw.label} is not OVMF; nothing to measure",
                                   evidence={"firmware": fw.label})
        sig = vcpu_sig(host_cpu, why=f"{spec.name}: -cpu host") if spec.cpu == "host" else None
        return cls(mode=spec.kind, ovmf=ovmf, vcpus=spec.vcpus, vcpu_type=spec.cpu, vcpu_sig=sig,
                   kernel=spec.kernel, initrd=spec.initrd, append=spec.append or None,
                   kernel_hashes=spec.kernel_hashes, guest_features=guest_features)


def expected_measurement(inp: LaunchInputs) -> bytes:
    """48-byte SNP launch digest (SEV/SEV-ES: 32-byte GCTX.LD). Raises MeasurementError."""
    from sevsnpmeasure import guest, vcpu_types

    # The enums guest.py itself compares against: if sevsnpmeasure's modules were ever re-imported
    # (pytester restores sys.modules), a separately imported SevMode would be a different class and
    # calc_launch_digest would answer "unknown mode".
    SevMode, VMMType = guest.SevMode, guest.VMMType

    evidence = {"mode": inp.mode, "ovmf": str(inp.ovmf), "kernel": str(inp.kernel), "initrd": str(inp.initrd),
                "append": inp.append, "vcpus": inp.vcpus, "vcpu_type": inp.vcpu_type,
                "vcpu_sig": None if inp.vcpu_sig is None else hex(inp.vcpu_sig),
                "kernel_hashes": inp.kernel_hashes, "guest_features": hex(inp.guest_features)}
    if inp.mode not in MODES:
        raise MeasurementError(f"unknown mode {inp.mode!r}; one of {', '.join(MODES)}", evidence=evidence)
    if inp.vcpu_sig is not None:
        sig = inp.vcpu_sig
    elif inp.vcpu_type in vcpu_types.CPU_SIGS:
        sig = vcpu_types.CPU_SIGS[inp.vcpu_type]
    else:
        raise MeasurementError(f"vCPU type {inp.vcpu_type!r} unknown to sev-snp-measure (known: "
                               f"{', '.join(sorted(vcpu_types.CPU_SIGS))}); pass the CPUID signature",
                               evidence=evidence)
    if inp.kernel is None and (inp.initrd is not None or inp.append):
        raise MeasurementError("initrd or command line without a kernel", evidence=evidence)
    for p in (inp.ovmf, inp.kernel, inp.initrd):
        if p is not None and not Path(p).is_file():
            raise MeasurementError(f"launch input {p} does not exist", evidence=evidence)
    measured_kernel = inp.kernel is not None and inp.kernel_hashes
    try:
        digest: bytes = guest.calc_launch_digest(
            getattr(SevMode, MODES[inp.mode]), inp.vcpus, sig, str(inp.ovmf),
            str(inp.kernel) if measured_kernel else None,
            str(inp.initrd) if measured_kernel and inp.initrd is not None else None,
            inp.append if measured_kernel else None,
            inp.guest_features, "", vmm_type=getattr(VMMType, inp.vmm_type))
    except (RuntimeError, ValueError, AssertionError, OSError) as exc:
        raise MeasurementError(f"sev-snp-measure cannot compute the {inp.mode} launch digest for firmware "
                               f"{inp.ovmf}: {exc}", evidence=evidence) from None
    return digest


AMDSEV_HINT = ("use an OVMF built from OvmfPkg/AmdSev/AmdSevX64.dsc; Debian's ovmf has no SNP "
               "kernel-hashes section, and an OvmfPkgX64 build that has one does not enforce the hashes")


@dataclass(frozen=True, slots=True)
class MeasuredBootSupport:
    """Can an SNP guest on ``firmware`` be launched with ``kernel-hashes=on``? QEMU puts the kernel,
    initrd and command line hashes into the SEV hash table (GPA from the OVMF GUID table) and SNP
    measures the page the SNP_KERNEL_HASHES metadata section names: both must be there."""

    firmware: str
    supported: bool
    why: str                          # the finding, in words
    source: str                       # "host probe" or "parsed": where the finding comes from
    image: dict[str, Any] | None      # the OvmfImage the decision rests on (None: no firmware)
    # Measured is not enforced (host/ovmf.py AMDSEV_ONLY_FILES): does the firmware refuse a kernel,
    # initrd or command line that differs from the measured hashes? None: not determined.
    enforced: bool | None = None
    enforcement: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"firmware": self.firmware, "kernel_hashes": self.supported, "why": self.why,
                "source": self.source, "image": self.image, "hashes_enforced": self.enforced,
                "enforcement": self.enforcement}


def inspect_firmware(path: str | Path) -> OvmfImage:
    """The host probe's content analysis of one local OVMF file (same reader, same parser)."""
    from ..host import collector
    from ..host.ovmf import ParserUnavailable, inspect
    real = os.path.realpath(path)
    size = os.path.getsize(real) if os.path.isfile(real) else -1
    try:
        return inspect({"path": str(path), "realpath": real, "size": size, **collector.ovmf_content(real)})
    except ParserUnavailable as exc:
        raise MeasurementError(str(exc), evidence={"firmware": str(path)}) from None


def snp_measured_boot_support(firmware: str | Path | None, kernel: Path | None,
                              probed: Iterable[OvmfImage] = ()) -> MeasuredBootSupport:
    """Decide measured direct boot for an SNP launch from the firmware's content: the probe's analysis
    of that file when it has one (``probed``: HostReport.ovmf_images), else the file parsed here."""
    if firmware is None:
        return MeasuredBootSupport("", False, "no OVMF image for -bios", "none", None)
    if kernel is None:
        return MeasuredBootSupport(str(firmware), False, "the guest image boots from disk: there is no "
                                   "direct-boot kernel to measure", "none", None)
    real = os.path.realpath(firmware)
    img = next((i for i in probed if i.error is None and real in (i.realpath, os.path.realpath(i.path))), None)
    source = "host probe"
    if img is None:
        img, source = inspect_firmware(firmware), "parsed"
    if img.error is not None:
        return MeasuredBootSupport(str(firmware), False, f"firmware not parseable: {img.error}", source,
                                   img.to_json())
    missing = [what for what, ok in (("SNP metadata (SNP_SEC_MEM, SNP_SECRETS, CPUID)", img.snp),
                                     ("an SNP_KERNEL_HASHES metadata section", img.snp_kernel_hashes),
                                     ("a SEV hash table with a non-zero GPA", img.kernel_hashes)) if not ok]
    if missing:
        why = f"{img.summary()}; missing " + ", ".join(missing)
        return MeasuredBootSupport(str(firmware), False, why, source, img.to_json(), img.hashes_enforced,
                                   img.enforcement())
    return MeasuredBootSupport(str(firmware), True, img.summary(), source, img.to_json(), img.hashes_enforced,
                               img.enforcement())
