"""Wrap an SNP-capable OVMF into an IGVM file that QEMU's loader boots as an SEV-SNP guest.

The shape is roy-hopkins/buildigvm's (the builder QEMU's docs/system/igvm.rst names; src/igvm_builder.rs,
src/ovmf_firmware.rs, src/vmsa.rs), with sev-snp-measure's parsing and VMSA builder instead of its own:

- platform: one SUPPORTED_PLATFORM, SEV-SNP, compatibility mask 1, version 1; initialization: the
  GUEST_POLICY (QEMU launches with it: backends/igvm.c qigvm_handle_policy -> set_guest_policy).
- the OVMF image page by page, ending at 4 GiB, as measured NORMAL pages (sevsnpmeasure.ovmf.OVMF).
- OVMF's SNP metadata sections (OvmfSevMetadata in the GUID table), in the firmware's order, which is
  the order QEMU's flash launch and sev-snp-measure use (buildigvm puts secrets, CAA, CPUID first):
  SNP_SEC_MEM, SVSM_CAA and SNP_KERNEL_HASHES as PAGE_DATA without data (an IGVM file has no native
  zero page type: such a page is a measured normal page of zeros; no kernel hashes are built in),
  SNP_SECRETS as SECRETS, CPUID as CPUID_DATA (QEMU fills the CPUID page, snp_launch_update_cpuid).
- one VP_CONTEXT per vCPU at KVM's VMSA GPA, last: vp 0 starts at the reset vector 0xfffffff0, every
  other vCPU at OVMF's SEV-ES AP reset block (SEV_ES_RESET_BLOCK_GUID), exactly the VMSAs
  sevsnpmeasure.vmsa.VMSA builds for a QEMU launch. QEMU reads no reset block with IGVM
  (sev_es_save_reset_vector runs for flash firmware only) and applies VP context n to vCPU n, so the
  APs must be in the file: the file is built for exactly ``vcpus`` vCPUs, as buildigvm's --cpucount.
  All fields sev-snp-measure sets are ones QEMU carries into the vCPU (docs/system/igvm.rst list),
  so the VMSA KVM measures is this page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, MeasurementError
from ..userfiles import OVMF_IMAGE, read_file
from .format import (
    PAGE_SIZE_4K,
    Directive,
    GuestPolicy,
    IgvmFile,
    PageData,
    PageDataType,
    PlatformType,
    SupportedPlatform,
    VpContext,
)
from .measure import KVM_VMSA_GPA

SNP_MASK = 1                         # buildigvm COMPATIBILITY_MASK
DEFAULT_SNP_POLICY = 0x30000         # buildigvm / QEMU sev-snp-guest default: SMT allowed, reserved bit 17
SNP_GUEST_FEATURES = 0x1             # VMSA SEV_FEATURES: SNPActive only


@dataclass(frozen=True, slots=True)
class BuildInputs:
    ovmf: Path
    vcpus: int = 1
    vcpu_type: str = "EPYC-v4"       # QEMU -cpu model; its CPUID signature goes into the VMSA's RDX
    vcpu_sig: int | None = None      # overrides vcpu_type (-cpu host: the host's signature)
    policy: int = DEFAULT_SNP_POLICY


def vcpu_signature(vcpu_type: str, vcpu_sig: int | None = None) -> int:
    from sevsnpmeasure import vcpu_types

    if vcpu_sig is not None:
        return vcpu_sig
    if vcpu_type not in vcpu_types.CPU_SIGS:
        raise MeasurementError(f"vCPU type {vcpu_type!r} unknown to sev-snp-measure (known: "
                               f"{', '.join(sorted(vcpu_types.CPU_SIGS))}); pass the CPUID signature",
                               evidence={"vcpu_type": vcpu_type})
    sig: int = vcpu_types.CPU_SIGS[vcpu_type]
    return sig


def build_ovmf_igvm(inp: BuildInputs) -> IgvmFile:
    """The IGVM file for an SEV-SNP launch of ``inp.ovmf``. Raises InputError for a firmware that is not
    an SNP-capable OVMF, MeasurementError for an unknown vCPU type."""
    from sevsnpmeasure.guest import SevMode, VMMType
    from sevsnpmeasure.ovmf import OVMF, SectionType
    from sevsnpmeasure.vmsa import VMSA

    if inp.vcpus < 1:
        raise InputError(f"vcpus={inp.vcpus}: a guest has at least one vCPU")
    sig = vcpu_signature(inp.vcpu_type, inp.vcpu_sig)
    read_file(inp.ovmf, OVMF_IMAGE, "OVMF")        # a regular file within the cap, before sev-snp-measure reads it
    try:
        ovmf = OVMF(str(inp.ovmf))
        items = list(ovmf.metadata_items())
        ap_eip = ovmf.sev_es_reset_eip() if inp.vcpus > 1 else 0
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise InputError(f"{inp.ovmf}: not an SNP-capable OVMF image: {exc}") from None
    if not items:
        raise InputError(f"{inp.ovmf}: no SEV metadata section (OVMF_SEV_META_DATA_GUID): not an SNP-capable OVMF")
    data: bytes = ovmf.data()
    if len(data) % PAGE_SIZE_4K:
        raise InputError(f"{inp.ovmf}: {len(data)} bytes is not a whole number of 4 KiB pages")
    base: int = ovmf.gpa()
    out: list[Directive] = [PageData(base + off, SNP_MASK, data=data[off:off + PAGE_SIZE_4K])
                            for off in range(0, len(data), PAGE_SIZE_4K)]
    for desc in items:
        kind = desc.section_type()
        if kind == SectionType.SNP_SECRETS:
            out.append(PageData(desc.gpa, SNP_MASK, PageDataType.SECRETS))
        elif kind == SectionType.CPUID:
            out.append(PageData(desc.gpa, SNP_MASK, PageDataType.CPUID_DATA))
        elif kind in (SectionType.SNP_SEC_MEM, SectionType.SVSM_CAA, SectionType.SNP_KERNEL_HASHES):
            out += [PageData(desc.gpa + off, SNP_MASK) for off in range(0, desc.size, PAGE_SIZE_4K)]
        else:
            raise InputError(f"{inp.ovmf}: SEV metadata section type {kind} is not one sevkit knows")
    vmsa = VMSA(SevMode.SEV_SNP, ap_eip, sig, SNP_GUEST_FEATURES, VMMType.QEMU)
    out += [VpContext(KVM_VMSA_GPA, SNP_MASK, i, bytes(page)) for i, page in enumerate(vmsa.pages(inp.vcpus))]
    return IgvmFile(platforms=(SupportedPlatform(SNP_MASK, PlatformType.SEV_SNP),),
                    initializations=(GuestPolicy(inp.policy, SNP_MASK),), directives=tuple(out))
