"""Pure decoding of CPUID leaves: vendor, brand, family/model/stepping, generation, Fn8000_001F.

References: AMD APM vol. 3 CPUID Fn0000_0001, Fn8000_0002..4, Fn8000_001F (sev-facts.md §1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Fn8000_001F EAX bit -> APM name (sev-facts.md §1.1; names marked [U] there are kept, marked).
EAX_BITS: dict[int, str] = {
    0: "SME", 1: "SEV", 2: "PageFlushMsr", 3: "SEV-ES", 4: "SEV-SNP", 5: "VMPL", 6: "RMPQUERY",
    7: "VmplSSS", 8: "SecureTsc", 9: "TscAuxVirtualization", 10: "HwEnfCacheCoh", 11: "64BitHost",
    12: "RestrictedInjection", 13: "AlternateInjection", 14: "DebugSwap", 15: "PreventHostIbs",
    16: "VTE", 17: "VmgexitParameter", 18: "VirtualTomMsr", 19: "IbsVirtGuestCtl",
    20: "PmcVirtGuestCtl[U]", 21: "RMPREAD[U]", 22: "GuestInterceptCtl[U]", 23: "SegmentedRmp[U]",
    24: "VmsaRegProt", 25: "SmtProtection", 26: "SecureAvic[U]", 27: "AllowedSevFeatures[U]",
    28: "SvsmCommPageMSR", 29: "NestedVirtSnpMsr", 30: "HvInUseWrAllowed[U]",
}
FEATURE_BITS = {"SME": 0, "SEV": 1, "SEV-ES": 3, "SEV-SNP": 4}


def regs_text(leaf: int, regs: tuple[int, int, int, int]) -> str:
    eax, ebx, ecx, edx = regs
    return f"CPUID 0x{leaf:08x}: eax=0x{eax:08x} ebx=0x{ebx:08x} ecx=0x{ecx:08x} edx=0x{edx:08x}"


def vendor(leaf0: tuple[int, int, int, int]) -> str:
    _, ebx, ecx, edx = leaf0
    return struct.pack("<3I", ebx, edx, ecx).decode("ascii", "replace")


def brand(l2: tuple[int, ...], l3: tuple[int, ...], l4: tuple[int, ...]) -> str:
    raw = struct.pack("<12I", *l2, *l3, *l4)
    return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()


@dataclass(frozen=True)
class Signature:
    family: int
    model: int
    stepping: int

    def __str__(self) -> str:
        return f"family 0x{self.family:x} model 0x{self.model:x} stepping 0x{self.stepping:x}"


def signature(eax1: int) -> Signature:
    """Display family/model per the APM: extended fields count only when base family is 0xF."""
    base_fam, base_model, step = (eax1 >> 8) & 0xF, (eax1 >> 4) & 0xF, eax1 & 0xF
    ext_fam, ext_model = (eax1 >> 20) & 0xFF, (eax1 >> 16) & 0xF
    fam = base_fam + ext_fam if base_fam == 0xF else base_fam
    model = (ext_model << 4) | base_model if base_fam >= 0x6 else base_model
    return Signature(fam, model, step)


def generation(sig: Signature, brand_string: str = "") -> str:
    """EPYC generation name from family/model; '' when unknown. Client parts are not EPYC."""
    f, m = sig.family, sig.model
    if f == 0x17:
        if m <= 0x0F:
            return "Naples"
        if 0x30 <= m <= 0x3F:
            return "Rome"
    elif f == 0x19:
        if m <= 0x0F:
            return "Milan"
        if 0x10 <= m <= 0x1F:
            return "Genoa"
        if 0xA0 <= m <= 0xAF:
            return "Bergamo/Siena"
    elif f == 0x1A and m <= 0x1F:
        return "Turin"
    return ""


def sev_firmware_file(sig: Signature) -> str:
    """The file the ccp driver loads at init (drivers/crypto/ccp/sev-dev.c sev_get_firmware())."""
    return f"amd/amd_sev_fam{sig.family:02x}h_model{sig.model >> 4:x}xh.sbin"


@dataclass(frozen=True)
class MemEncryptInfo:
    """CPUID Fn8000_001F decoded (sev-facts.md §1.1, §1.2)."""

    eax: int
    ebx: int
    ecx: int
    edx: int

    def bit(self, n: int) -> bool:
        return bool(self.eax >> n & 1)

    @property
    def cbitpos(self) -> int:
        return self.ebx & 0x3F

    @property
    def phys_addr_reduction(self) -> int:
        return (self.ebx >> 6) & 0x3F

    @property
    def num_vmpl(self) -> int:
        return (self.ebx >> 12) & 0xF

    @property
    def max_guests(self) -> int:
        return self.ecx

    @property
    def min_sev_asid(self) -> int:
        return self.edx

    def eax_features(self) -> list[str]:
        return [name for bit, name in EAX_BITS.items() if self.bit(bit)]
