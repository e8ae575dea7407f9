"""The SEV-SNP launch digest QEMU + KVM produce when they boot an IGVM file: predicted from the file.

The algorithm is coconut-svsm's igvmmeasure (tools/igvmmeasure/src/igvm_measure.rs, IgvmMeasure::do_measure
and measure_page_4k, platform sev-snp, without --native-zero): directives whose compatibility mask is the
SEV-SNP platform's are measured in file order, one SNP PAGE_INFO update per 4 KiB page
(tools/igvmmeasure/src/page_info.rs; SNP ABI PAGE_INFO), with sev-snp-measure's GCTX doing each update:

    PAGE_DATA NORMAL with data   -> NORMAL page, SHA-384 of the (zero-padded) page
    PAGE_DATA NORMAL, no data    -> NORMAL page of zeros (not the ZERO type: see below)
    PAGE_DATA with unmeasured    -> UNMEASURED page
    PAGE_DATA SECRETS            -> SECRETS page
    PAGE_DATA CPUID_DATA/_XF     -> CPUID page
    VP_CONTEXT                   -> VMSA page (SHA-384 of the 4 KiB VMSA), GPA 0xFFFFFFFFF000

That is also what QEMU's loader does (backends/igvm.c qigvm_type_to_cgs_type, qigvm_process_mem_region;
target/i386/sev.c cgs_set_guest_state): a page without data becomes CGS_PAGE_TYPE_ZERO, which sev.c hands to
launch_update_data, i.e. KVM_SEV_SNP_PAGE_TYPE_NORMAL over a zeroed page; the IGVM format says the same
("the loader should treat this page with a file_offset of zero as a normal private page with zeros as
contents", igvm_defs IGVM_VHS_PAGE_DATA). Where QEMU/KVM and igvmmeasure differ, sevkit follows QEMU/KVM:

- KVM measures the VMSAs at SNP_LAUNCH_FINISH, after every page, one per vCPU in vCPU order; igvmmeasure
  measures them where they stand and, with --check-kvm, requires them last. Here they always go last,
  by vp_index.
- QEMU applies VP_CONTEXT vp_index n to vCPU n (sev_set_cpu_context; "Setting of the initial CPU state for
  the boot CPU and additional CPUs is supported", docs/system/igvm.rst) and refuses an index beyond the
  vCPUs. A vCPU without a VP_CONTEXT keeps QEMU's reset state (with IGVM no OVMF reset block is read:
  sev_es_save_reset_vector runs for flash firmware only), which is not the file's: predicting that is
  refused. So ``vcpus`` must equal the number of VP contexts (igvmmeasure has no vCPU count at all).
- QEMU copies only some VMSA fields into the vCPU, from which KVM rebuilds the VMSA it measures
  (sev_apply_cpu_context; check_vmsa_supported refuses any other non-zero field; docs/system/igvm.rst
  "Initial CPU state with VMSA" lists them) and requires GPA 0xFFFFFFFFF000 (KVM_VMSA_GPA): a VMSA
  breaking either is refused here too, since QEMU would not launch it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import MeasurementError
from .format import (
    FLAG_UNMEASURED,
    PAGE_SIZE_4K,
    IgvmFile,
    PageData,
    PageDataType,
    PlatformType,
    RequiredMemory,
    VpContext,
)

KVM_VMSA_GPA = 0xFFFFFFFFF000       # target/i386/sev.c KVM_VMSA_GPA; sevsnpmeasure GCTX.VMSA_GPA
# docs/system/igvm.rst / check_vmsa_supported: the VMSA fields QEMU carries into the vCPU (field names of
# struct sev_es_save_area, as sevsnpmeasure.vmsa.SevEsSaveArea names them).
VMSA_FIELDS_QEMU_APPLIES = (
    "es", "cs", "ss", "ds", "fs", "gs", "gdtr", "idtr", "ldtr", "tr", "efer", "cr0", "cr3", "cr4", "xcr0",
    "dr6", "dr7", "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
    "r13", "r14", "r15", "rip", "rflags", "g_pat", "x87_fcw", "mxcsr", "sev_features")
SEV_FEATURES_SNP_ACTIVE = 1         # VMSA SEV_FEATURES bit 0, SNPActive; QEMU requires it for SNP


@dataclass(frozen=True, slots=True)
class Prediction:
    """The predicted MEASUREMENT and what it is made of (page counts by SNP page type)."""

    digest: bytes
    vcpus: int
    pages: dict[str, int] = field(default_factory=dict)
    policy: int | None = None        # the file's GUEST_POLICY (not part of the digest; QEMU launches with it)

    def to_json(self) -> dict[str, object]:
        return {"launch_digest": self.digest.hex(), "vcpus": self.vcpus, "pages": dict(self.pages),
                "policy": None if self.policy is None else hex(self.policy)}


def _vmsa_allowed_mask() -> bytearray:
    from sevsnpmeasure.vmsa import SevEsSaveArea

    allowed = bytearray(PAGE_SIZE_4K)
    for name in VMSA_FIELDS_QEMU_APPLIES:
        f = getattr(SevEsSaveArea, name)
        allowed[f.offset:f.offset + f.size] = b"\x01" * f.size
    return allowed


def check_vmsa(ctx: VpContext) -> None:
    """Refuse a VMSA QEMU would refuse (GPA, fields it cannot carry, SNPActive missing)."""
    from sevsnpmeasure.vmsa import SevEsSaveArea

    ev = {"vp_index": ctx.vp_index, "gpa": hex(ctx.gpa)}
    if ctx.gpa != KVM_VMSA_GPA:
        raise MeasurementError(f"VP context {ctx.vp_index}: VMSA GPA {ctx.gpa:#x} is not KVM's fixed "
                               f"{KVM_VMSA_GPA:#x}; QEMU refuses it (check_vmsa_supported)", evidence=ev)
    allowed = _vmsa_allowed_mask()
    stray = next((i for i, b in enumerate(ctx.vmsa) if b and not allowed[i]), None)
    if stray is not None:
        raise MeasurementError(f"VP context {ctx.vp_index}: VMSA byte {stray:#x} is set outside the fields QEMU "
                               "carries into the vCPU; QEMU refuses it (\"fields that are not synchronized with "
                               "KVM\", check_vmsa_supported)", evidence={**ev, "offset": hex(stray)})
    f = SevEsSaveArea.sev_features
    feats = int.from_bytes(ctx.vmsa[f.offset:f.offset + f.size], "little")
    if not feats & SEV_FEATURES_SNP_ACTIVE:
        raise MeasurementError(f"VP context {ctx.vp_index}: VMSA SEV_FEATURES {feats:#x} lacks SNPActive (bit 0), "
                               "which an SEV-SNP launch requires", evidence={**ev, "sev_features": hex(feats)})


def launch_digest(f: IgvmFile, vcpus: int) -> Prediction:
    """The SEV-SNP launch digest of ``f`` booted by QEMU/KVM with ``vcpus`` vCPUs. Raises MeasurementError."""
    from sevsnpmeasure.gctx import GCTX

    mask = f.platform_mask(PlatformType.SEV_SNP)
    if mask is None:
        raise MeasurementError("the IGVM file has no SEV-SNP supported-platform header: QEMU would not launch "
                               "it as an SEV-SNP guest", evidence={"platforms": [p.platform_type for p in f.platforms]})
    if vcpus < 1:
        raise MeasurementError(f"vcpus={vcpus}: a guest has at least one vCPU", evidence={"vcpus": vcpus})
    gctx = GCTX()
    counts: dict[str, int] = {}
    vmsas: dict[int, bytes] = {}

    def count(kind: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1

    for d in f.directives:
        if not d.compatibility_mask & mask or isinstance(d, RequiredMemory):
            continue            # another platform's; REQUIRED_MEMORY only converts memory, unmeasured
        if isinstance(d, VpContext):
            check_vmsa(d)
            vmsas[d.vp_index] = d.vmsa           # QEMU replaces an earlier context of the same vCPU
            continue
        assert isinstance(d, PageData)
        _measure_page(gctx, d, count)
    beyond = sorted(i for i in vmsas if i >= vcpus)
    if beyond:
        raise MeasurementError(f"the IGVM file has VP contexts for vCPU(s) {beyond} but the guest has {vcpus}: QEMU "
                               "refuses a context for an out-of-bounds CPU index",
                               evidence={"vp_indexes": sorted(vmsas)})
    missing = [i for i in range(vcpus) if i not in vmsas]
    if missing:
        raise MeasurementError(f"vCPU(s) {missing} of {vcpus} have no VP context in the IGVM file: QEMU starts them "
                               "in its reset state, not the firmware's; build the file for exactly this vCPU count",
                               evidence={"vp_indexes": sorted(vmsas), "vcpus": vcpus})
    for i in range(vcpus):
        gctx.update_vmsa_page(vmsas[i])
        count("vmsa")
    policy = next((g.policy for g in f.initializations if g.compatibility_mask & mask), None)
    return Prediction(bytes(gctx.ld()), vcpus, counts, policy)


def _measure_page(gctx: Any, d: PageData, count: Callable[[str], None]) -> None:
    if d.data_type == PageDataType.NORMAL:
        if d.flags & FLAG_UNMEASURED:
            gctx.update_unmeasured_pages(d.gpa, PAGE_SIZE_4K)
            count("unmeasured")
        else:
            gctx.update_normal_pages(d.gpa, d.data + bytes(PAGE_SIZE_4K - len(d.data)))
            count("normal" if d.data else "normal-zero")
    elif d.data_type == PageDataType.SECRETS:
        gctx.update_secrets_page(d.gpa)
        count("secrets")
    else:                                          # CPUID_DATA and CPUID_XF: both the SNP CPUID page type
        gctx.update_cpuid_page(d.gpa)
        count("cpuid")
