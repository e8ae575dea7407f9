"""Output of the `cpuid` tool: raw register dumps (`cpuid -1 -r [-l 0x8000001f]`) and decoded
lines (`cpuid | grep SEV`). Raw Fn8000_001F registers are decoded by sevkit.memencrypt (sev-facts §1.1/§1.2).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from ..errors import InputError
from ..memencrypt import FEATURE_BITS, MemEncryptInfo
from ..memencrypt import LEAF as LEAF_SEV
from ..vocab import FEATURES
from .dmesg import Features

# `cpuid -1 -r` (Todd Allen's cpuid): "   0x8000001f 0x00: eax=0x0101fd3f ebx=... ecx=... edx=..."
# Kept for detection; the parser below reads this and every other register notation.
RAW = re.compile(
    r"^[ \t]*+0x(?P<leaf>[0-9a-fA-F]{8}) 0x(?P<sub>[0-9a-fA-F]{2}): "
    r"eax=0x(?P<eax>[0-9a-fA-F]{8}) ebx=0x(?P<ebx>[0-9a-fA-F]{8}) "
    r"ecx=0x(?P<ecx>[0-9a-fA-F]{8}) edx=0x(?P<edx>[0-9a-fA-F]{8})", re.M)
# One register in any common notation: "eax=0x0101fd3f", "EAX = 0101FD3F,", "ebx: 0x4133;",
# "Fn8000_001F_EAX = 0x...", "0101fd3fh". Values are hex with or without 0x (register dumps are).
# Bounded quantifiers only: linear on hostile lines.
REG = re.compile(
    r"(?i)(?<![0-9a-z])(?:fn(?P<f1>[0-9a-f]{4})_?(?P<f2>[0-9a-f]{4})_)?(?P<reg>e[abcd]x)"
    r"\s{0,8}[=:]\s{0,8}(?P<val>(?:0x)?[0-9a-f]{1,8})h?(?![0-9a-z])")
# A leaf (or subleaf) token: 0x8000001f, Fn8000_001F / CPUID_Fn8000001F (AMD's PPR names), or
# 8 hex digits starting 8000 ("8000001F", "8000001Fh").
LEAF = re.compile(
    r"(?i)(?<![0-9a-z.])(?:0x(?P<x>[0-9a-f]{1,8})|fn(?P<f1>[0-9a-f]{4})_?(?P<f2>[0-9a-f]{4})"
    r"|(?P<b>8000[0-9a-f]{4})h?)(?![0-9a-z])")
CPU_HEADER = re.compile(r"^[ \t]{0,16}CPU(?:[ \t]{1,4}(?P<n>\d{1,5}))?[ \t]{0,4}:[ \t]*+$")
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


@dataclass
class RegisterSet:
    """EAX..EDX of one leaf as one CPU reported it, and the line(s) they came from."""

    leaf: int | None          # None: no leaf on the line and none named before it
    subleaf: int | None
    cpu: str | None           # the "CPU n:" block it sits in (cpuid's all-CPU dump)
    regs: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return set(self.regs) == set(REGS)

    def where(self) -> str:
        return " / ".join(ln.strip() for ln in self.lines)[:160]


REGS = ("eax", "ebx", "ecx", "edx")


def _leaf_of(m: re.Match[str]) -> int:
    if m["f1"] is not None:
        return int(m["f1"] + m["f2"], 16)
    return int(m["x"] if m["x"] is not None else m["b"], 16)


def register_sets(text: str) -> list[RegisterSet]:
    """Every register set in ``text``, whatever the notation: the leaf comes from the same line
    (before the first register), else from the last line that named one (a `cpuid -l 0x8000001f`
    command, a "leaf 0x8000001f:" heading); registers of one leaf may span lines."""
    sets: list[RegisterSet] = []
    cur: RegisterSet | None = None
    context: int | None = None
    cpu: str | None = None
    for line in text.splitlines():
        regs = list(REG.finditer(line))
        added: set[int] = set()
        if not regs:
            if h := CPU_HEADER.match(line):
                cpu, cur = h["n"] or "", None
            elif m := LEAF.search(line):
                context, cur = _leaf_of(m), None
            elif not line.strip():
                cur = None
            continue
        tokens = list(LEAF.finditer(line, 0, regs[0].start()))
        leaf = _leaf_of(tokens[0]) if tokens else context
        sub = _leaf_of(tokens[1]) if len(tokens) > 1 else None
        for r in regs:
            this = int(r["f1"] + r["f2"], 16) if r["f1"] is not None else leaf
            name = r["reg"].lower()
            if cur is None or cur.leaf != this or name in cur.regs or cur.cpu != cpu:
                cur = RegisterSet(this, sub, cpu)
                sets.append(cur)
            cur.regs[name] = int(r["val"], 16)
            if id(cur) not in added:
                added.add(id(cur))
                cur.lines.append(line)
    return sets


def _sev_leaf(sets: list[RegisterSet]) -> RegisterSet | None:
    """The one Fn8000_001F register set, or InputError when it is ambiguous."""
    unknown = [s for s in sets if s.leaf is None]
    if unknown:
        raise InputError(f"register values without a leaf ({unknown[0].where()!r}): name the leaf on the "
                         "line or before it (e.g. `cpuid -1 -r -l 0x8000001f`)")
    ours = [s for s in sets if s.leaf == LEAF_SEV and s.subleaf in (None, 0)]
    for s in ours:
        if not s.complete:
            missing = ", ".join(r for r in REGS if r not in s.regs)
            raise InputError(f"leaf 0x8000001f without {missing} ({s.where()!r}): all four registers are needed")
    if not ours:
        return None
    first = ours[0]
    # cpuid's all-CPU dump: each CPU block repeats the leaf, the first CPU's wins; anywhere else
    # two different values for the leaf are two different machines or a mangled paste.
    clash = [s for s in ours[1:] if s.regs != first.regs and (s.cpu is None or s.cpu == first.cpu)]
    if clash:
        raise InputError(f"leaf 0x8000001f appears with different values ({first.where()!r} and "
                         f"{clash[0].where()!r}): paste one CPU's registers")
    return first


def _first(sets: list[RegisterSet], leaf: int) -> RegisterSet | None:
    return next((s for s in sets if s.leaf == leaf and s.subleaf in (None, 0) and s.complete), None)


def parse_cpuid_text(text: str) -> CpuidInfo:
    """Fn8000_001F (and vendor, max extended leaf) from a register dump in any notation, or the
    decoded `cpuid | grep SEV` lines. InputError when leaf 0x8000001f is ambiguous (exit 2)."""
    sets = register_sets(text)
    sev = _sev_leaf(sets)
    leaves: dict[int, tuple[int, int, int, int, str]] = {}
    for leaf, found in ((0, _first(sets, 0)), (0x80000000, _first(sets, 0x80000000)), (LEAF_SEV, sev)):
        if found is not None:
            r = found.regs
            leaves[leaf] = (r["eax"], r["ebx"], r["ecx"], r["edx"], found.where())
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
    if LEAF_SEV in leaves:
        eax, ebx, ecx, edx, line = leaves[LEAF_SEV]
        evidence.append(line)
        registers = {"eax": f"0x{eax:08x}", "ebx": f"0x{ebx:08x}", "ecx": f"0x{ecx:08x}",
                     "edx": f"0x{edx:08x}"}
        me = MemEncryptInfo(eax, ebx, ecx, edx)
        for feature in FEATURE_BITS:
            features[feature] = me.has(feature)
        fields.update(c_bit=me.cbitpos, phys_addr_reduction=me.phys_addr_reduction, num_vmpls=me.num_vmpl,
                      max_guests=me.max_guests, min_sev_asid=me.min_sev_asid)
    elif 0x80000000 in leaves and leaves[0x80000000][0] < LEAF_SEV:
        features = dict.fromkeys(FEATURES, False)
        notes.append(f"max extended leaf 0x{leaves[0x80000000][0]:08x} < 0x8000001f: no memory encryption")
    else:
        if sets:
            notes.append("the register dump has no leaf 0x8000001f")
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
