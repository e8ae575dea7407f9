"""CPUID Fn8000_001F, AMD's memory-encryption leaf, decoded once for everyone: the host probe,
the `cpuid`-tool logs and the in-guest probe.

Sources (sev-facts.md §1.1, §1.2):
* EAX feature bits: AMD APM vol. 3 CPUID Fn8000_001F_EAX; torvalds/linux
  arch/x86/include/asm/cpufeatures.h (word 19 = CPUID 0x8000001F EAX); virtee/snphost src/ok/mod.rs.
* EBX[5:0] C-bit position: linux arch/x86/mm/mem_encrypt_identity.c sme_enable() (``ebx & 0x3f``).
* EBX[11:6] physical-address reduction: linux arch/x86/kernel/cpu/amd.c early_detect_mem_encrypt()
  (``(cpuid_ebx(0x8000001f) >> 6) & 0x3f``).
* EBX[15:12] number of VMPLs, EBX[31] COHERENCY_SFW_NO: virtee/snphost src/ok/mod.rs;
  tianocore/edk2 MdePkg/Include/Register/Amd/Cpuid.h.
* ECX number of encrypted guests (highest ASID), EDX minimum ASID of an SEV-only guest: APM;
  ASIDs 1..EDX-1 are for SEV-ES/SEV-SNP guests, EDX..ECX for plain SEV (KVM splits them this way).

Imports nothing heavy: the probe, the CLI and the guest checks all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .vocab import Feature

LEAF = 0x8000001F
SOURCE = "CPUID Fn8000_001F"


class EaxBit(IntEnum):
    """The EAX bits the suite reads by name (APM names; the full table is ``EAX_BITS``)."""

    SME = 0
    SEV = 1
    PAGE_FLUSH_MSR = 2
    SEV_ES = 3
    SEV_SNP = 4
    VMPL = 5
    SECURE_TSC = 8
    DEBUG_SWAP = 14
    SEGMENTED_RMP = 23
    SECURE_AVIC = 26


# Every documented EAX bit -> APM name. Names marked [U] are not confirmed against a current APM
# revision (sev-facts.md §1.1, §12); they are kept, marked.
EAX_BITS: dict[int, str] = {
    0: "SME", 1: "SEV", 2: "PageFlushMsr", 3: "SEV-ES", 4: "SEV-SNP", 5: "VMPL", 6: "RMPQUERY",
    7: "VmplSSS", 8: "SecureTsc", 9: "TscAuxVirtualization", 10: "HwEnfCacheCoh", 11: "64BitHost",
    12: "RestrictedInjection", 13: "AlternateInjection", 14: "DebugSwap", 15: "PreventHostIbs",
    16: "VTE", 17: "VmgexitParameter", 18: "VirtualTomMsr", 19: "IbsVirtGuestCtl",
    20: "PmcVirtGuestCtl[U]", 21: "RMPREAD[U]", 22: "GuestInterceptCtl[U]", 23: "SegmentedRmp[U]",
    24: "VmsaRegProt", 25: "SmtProtection", 26: "SecureAvic[U]", 27: "AllowedSevFeatures[U]",
    28: "SvsmCommPageMSR", 29: "NestedVirtSnpMsr", 30: "HvInUseWrAllowed[U]",
}
# The EAX bit that announces each host feature.
FEATURE_BITS: dict[Feature, EaxBit] = {
    Feature.SME: EaxBit.SME, Feature.SEV: EaxBit.SEV, Feature.SEV_ES: EaxBit.SEV_ES,
    Feature.SEV_SNP: EaxBit.SEV_SNP,
}
# EAX bits SEV | SEV-ES | SEV-SNP: what QEMU sets in a guest's view of the leaf (qemu/qemu
# target/i386/cpu.c cpu_x86_cpuid() case 0x8000001F; sev-facts §1.4).
SEV_MODE_MASK = (1 << EaxBit.SEV) | (1 << EaxBit.SEV_ES) | (1 << EaxBit.SEV_SNP)


def feature_mask(features: tuple[Feature, ...] | frozenset[Feature]) -> int:
    """The EAX bits that announce ``features`` (e.g. a guest kind's feature chain)."""
    mask = 0
    for f in features:
        mask |= 1 << FEATURE_BITS[f]
    return mask


@dataclass(frozen=True)
class MemEncryptInfo:
    """The four registers of CPUID Fn8000_001F and what they mean."""

    eax: int
    ebx: int
    ecx: int
    edx: int

    def bit(self, n: int) -> bool:
        """EAX bit ``n``."""
        return bool(self.eax >> n & 1)

    def has(self, feature: Feature) -> bool:
        """The CPU announces ``feature`` (its EAX bit is set)."""
        return self.bit(FEATURE_BITS[feature])

    @property
    def cbitpos(self) -> int:
        """EBX[5:0]: the C-bit's position in a page-table entry."""
        return self.ebx & 0x3F

    @property
    def phys_addr_reduction(self) -> int:
        """EBX[11:6]: physical-address bits lost while memory encryption is on."""
        return (self.ebx >> 6) & 0x3F

    @property
    def num_vmpl(self) -> int:
        """EBX[15:12]: number of VM permission levels (4 on SNP parts)."""
        return (self.ebx >> 12) & 0xF

    @property
    def coherency_sfw_no(self) -> bool:
        """EBX[31]: no software cache flush needed for coherency across encryption domains."""
        return bool(self.ebx >> 31 & 1)

    @property
    def max_guests(self) -> int:
        """ECX: encrypted guests supported at the same time (= highest usable ASID)."""
        return self.ecx

    @property
    def min_sev_asid(self) -> int:
        """EDX: lowest ASID of an SEV guest without SEV-ES; the ASIDs below it go to SEV-ES/SNP."""
        return self.edx

    @property
    def es_asids(self) -> int:
        """How many ASIDs (1..EDX-1) SEV-ES and SEV-SNP guests share."""
        return max(0, self.min_sev_asid - 1)

    @property
    def sev_only_asids(self) -> int:
        """How many ASIDs (EDX..ECX) plain-SEV guests get (all of them when EDX is 0)."""
        return max(0, self.max_guests - self.min_sev_asid + 1) if self.min_sev_asid else self.max_guests

    @property
    def sev_mode_bits(self) -> int:
        """EAX & (SEV | SEV-ES | SEV-SNP)."""
        return self.eax & SEV_MODE_MASK

    def eax_features(self) -> list[str]:
        """APM names of every documented EAX bit that is set."""
        return [name for bit, name in EAX_BITS.items() if self.bit(bit)]

    def regs_text(self) -> str:
        return regs_text(LEAF, (self.eax, self.ebx, self.ecx, self.edx))


def regs_text(leaf: int, regs: tuple[int, int, int, int]) -> str:
    """One CPUID leaf's registers as evidence text."""
    eax, ebx, ecx, edx = regs
    return f"CPUID 0x{leaf:08x}: eax=0x{eax:08x} ebx=0x{ebx:08x} ecx=0x{ecx:08x} edx=0x{edx:08x}"
