"""Output of the `cpuid` tool: raw register dumps (`cpuid -1 -r [-l 0x8000001f]`) and decoded
lines (`cpuid | grep SEV`). Raw Fn8000_001F registers are decoded by sevkit.memencrypt (sev-facts §1.1/§1.2).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from ..memencrypt import FEATURE_BITS, LEAF, MemEncryptInfo
from ..vocab import FEATURES
from .dmesg import Features

RAW = re.compile(
    r"^[ \t]*+0x(?P<leaf>[0-9a-fA-F]{8}) 0x(?P<sub>[0-9a-fA-F]{2}): "
    r"eax=0x(?P<eax>[0-9a-fA-F]{8}) ebx=0x(?P<ebx>[0-9a-fA-F]{8}) "
    r"ecx=0x(?P<ecx>[0-9a-fA-F]{8}) edx=0x(?P<edx>[0-9a-fA-F]{8})", re.M)
# Possessive/horizontal-only blanks keep these linear on crafted lines (issue 10 item 7).
_BOOL = r"\s*=\s*(?P<v>true|false)\b"
_NUM = r"\s*=\s*(?:0x[0-9a-fA-F]+\s*\(\s*(?P<d>\d+)\s*\)|(?P<h>0x[0-9a-fA-F]+)|(?P<n>\d+))"
DECODED_BOOL = {
    "SME": re.compile(r"^[ \t]*+SME:[^=\n]*+" + _BOOL, re.M),
    "SEV": re.compile(r"^[ \t]*+SEV:[^=\n]*+" + _BOOL, re.M),
    "SEV-ES": re.compile(r"^[ \t]*+SEV-ES:[^=\n]*+" + _BOOL, re.M),
    "SEV-SNP": re.compile(r"^[ \t]*+SEV-SNP:[^=\n]*+" + _BOOL, re.M),
}
DECODED_NUM = {
    "c_bit": re.compile(r"^[ \t]*+encryption bit position[^=\n]*+" + _NUM, re.M),
    "phys_addr_reduction": re.compile(r"^[ \t]*+physical address(?>[^=\n]*reduction)[^=\n]*+" + _NUM, re.M),
    "num_vmpls": re.compile(r"^[ \t]*+number of VM permission levels[^=\n]*+" + _NUM, re.M),
    "max_guests": re.compile(r"^[ \t]*+number of SEV-enabled guests supported[^=\n]*+" + _NUM, re.M),
    "min_sev_asid": re.compile(r"^[ \t]*+minimum SEV guest ASID[^=\n]*+" + _NUM, re.M),
}

@dataclass(frozen=True)
class CpuidInfo:
    features: Features
    fields: dict[str, int | None]          # c_bit, phys_addr_reduction, max_guests, min_sev_asid, ...
    registers: dict[str, str] = field(default_factory=dict)   # raw Fn8000_001F EAX..EDX, as hex
    vendor: str | None = None
    notes: list[str] = field(default_factory=list)
    evidence_lines: list[str] = field(default_factory=list)


def _num(m: re.Match[str] | None) -> int | None:
    if m is None:
        return None
    if m["d"] is not None:
        return int(m["d"])
    if m["h"] is not None:
        return int(m["h"], 16)
    return int(m["n"])


def parse_cpuid_text(text: str) -> CpuidInfo:
    leaves: dict[int, tuple[int, int, int, int, str]] = {}
    for m in RAW.finditer(text):
        leaf = int(m["leaf"], 16)
        if int(m["sub"], 16) == 0 and leaf not in leaves:   # first CPU's value wins
            leaves[leaf] = (int(m["eax"], 16), int(m["ebx"], 16), int(m["ecx"], 16), int(m["edx"], 16),
                            m.group(0).strip())
    features: Features = dict.fromkeys(FEATURES)
    fields: dict[str, int | None] = dict.fromkeys(
        ("c_bit", "phys_addr_reduction", "num_vmpls", "max_guests", "min_sev_asid"))
    registers: dict[str, str] = {}
    notes: list[str] = []
    evidence: list[str] = []
    vendor: str | None = None

    if 0 in leaves:
        _, ebx, ecx, edx, line = leaves[0]
        vendor = struct.pack("<3I", ebx, edx, ecx).decode("ascii", "replace")
        evidence.append(line)
        if vendor != "AuthenticAMD":
            notes.append(f"vendor {vendor} is not AMD")
    if LEAF in leaves:
        eax, ebx, ecx, edx, line = leaves[LEAF]
        evidence.append(line)
        registers = {"eax": f"0x{eax:08x}", "ebx": f"0x{ebx:08x}", "ecx": f"0x{ecx:08x}",
                     "edx": f"0x{edx:08x}"}
        me = MemEncryptInfo(eax, ebx, ecx, edx)
        for feature in FEATURE_BITS:
            features[feature] = me.has(feature)
        fields.update(c_bit=me.cbitpos, phys_addr_reduction=me.phys_addr_reduction, num_vmpls=me.num_vmpl,
                      max_guests=me.max_guests, min_sev_asid=me.min_sev_asid)
    elif 0x80000000 in leaves and leaves[0x80000000][0] < LEAF:
        features = dict.fromkeys(FEATURES, False)
        notes.append(f"max extended leaf 0x{leaves[0x80000000][0]:08x} < 0x8000001f: no memory encryption")
    else:
        for name, rx in DECODED_BOOL.items():
            if bm := rx.search(text):
                features[name] = bm["v"] == "true"
                evidence.append(bm.group(0).strip())
        for key, rx in DECODED_NUM.items():
            if nm := rx.search(text):
                fields[key] = _num(nm)
                evidence.append(nm.group(0).strip())
    if fields["min_sev_asid"] and fields["min_sev_asid"] > 1 and fields["max_guests"] is not None:
        notes.append(f"ASIDs 1-{fields['min_sev_asid'] - 1} for SEV-ES/SNP, "
                     f"{fields['min_sev_asid']}-{fields['max_guests']} for SEV")
    return CpuidInfo(features=features, fields=fields, registers=registers, vendor=vendor, notes=notes,
                     evidence_lines=evidence)
