"""Pure decoding of CPUID leaves: vendor, brand, family/model/stepping, generation.

References: AMD APM vol. 3 CPUID Fn0000_0001, Fn8000_0002..4. Fn8000_001F is decoded in
sevkit.memencrypt (sev-facts.md §1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


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
