"""The expected launch measurement, computed by sev-snp-measure (sev-facts §10.2) from exactly what
the launcher used. Not reimplemented here: we only translate inputs and errors.

For measured direct boot (QEMU ``kernel-hashes=on``) the kernel, initrd and command line are
measured; without it they must not be passed. An OVMF without the SNP kernel-hashes section
(Debian's, for one) cannot measure a kernel: that is a MeasurementError naming the firmware.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MeasurementError

if TYPE_CHECKING:
    from ..qemu.spec import GuestSpec

MODES = {"sev": "SEV", "sev-es": "SEV_ES", "sev-snp": "SEV_SNP"}


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
    def from_spec(cls, spec: GuestSpec, *, guest_features: int = 0x1) -> LaunchInputs:
        """Exactly what sevkit's launcher (sevkit.qemu.GuestSpec) passes to QEMU."""
        fw = spec.firmware
        ovmf = fw.image if fw.kind == "bios" else fw.code
        if ovmf is None:
            raise MeasurementError(f"{spec.name}: firmware {fw.label} is not OVMF; nothing to measure",
                                   evidence={"firmware": fw.label})
        return cls(mode=spec.kind, ovmf=ovmf, vcpus=spec.vcpus, vcpu_type=spec.cpu, kernel=spec.kernel,
                   initrd=spec.initrd, append=spec.append or None, kernel_hashes=spec.kernel_hashes,
                   guest_features=guest_features)


def expected_measurement(inp: LaunchInputs) -> bytes:
    """48-byte SNP launch digest (SEV/SEV-ES: 32-byte GCTX.LD). Raises MeasurementError."""
    from sevsnpmeasure import guest, vcpu_types
    from sevsnpmeasure.sev_mode import SevMode
    from sevsnpmeasure.vmm_types import VMMType

    evidence = {"mode": inp.mode, "ovmf": str(inp.ovmf), "kernel": str(inp.kernel), "initrd": str(inp.initrd),
                "append": inp.append, "vcpus": inp.vcpus, "vcpu_type": inp.vcpu_type,
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
