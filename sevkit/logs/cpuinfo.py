"""/proc/cpuinfo and lscpu captures: the advertised sme/sev/sev_es/sev_snp flags.

A flag only says the kernel advertises the capability. It does not make SEV usable: a
client Ryzen advertises `sme sev sev_es` without the EPYC PSP firmware SEV needs
(AMDSEV#1), a Hygon CPU is not AMD, and guests clear these flags (sev-facts §1.4). The
parser reports the flags as they are and says what else the capture shows in ``notes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..vocab import FEATURES
from .dmesg import Features

# /proc/cpuinfo "flags\t\t: ..." and lscpu "Flags:   ...". "vmx flags" (Intel) must not match.
FLAGS = re.compile(r"^(?:flags\s*:|Flags:)[ \t]*(?P<flags>.*)$", re.M)
MODEL = re.compile(r"^(?:model name\s*:|Model name:)[ \t]*(?P<v>.+?)\s*$", re.M)
VENDOR = re.compile(r"^(?:vendor_id\s*:|Vendor ID:)[ \t]*(?P<v>\S+)", re.M)

FLAG_NAMES = {f: f.flag for f in FEATURES}


@dataclass(frozen=True)
class CpuInfo:
    features: Features
    flags: frozenset[str]
    cpu: str | None = None        # model name, when the capture has it
    vendor: str | None = None     # AuthenticAMD, HygonGenuine, ...
    is_epyc: bool | None = None   # None: the capture does not name the CPU
    notes: list[str] = field(default_factory=list)
    evidence_lines: list[str] = field(default_factory=list)


def parse_cpuinfo(text: str) -> CpuInfo:
    m = FLAGS.search(text)
    flags = frozenset(m["flags"].split()) if m else frozenset()
    features: Features = dict.fromkeys(FEATURES)
    if m:
        for name, flag in FLAG_NAMES.items():
            features[name] = flag in flags
    model = MODEL.search(text)
    vendor = VENDOR.search(text)
    cpu = model["v"] if model else None
    vend = vendor["v"] if vendor else None
    notes: list[str] = []
    is_epyc: bool | None = None
    if vend and vend != "AuthenticAMD":
        notes.append(f"vendor {vend} is not AMD: these flags do not mean AMD SEV")
    if cpu is not None:
        is_epyc = "EPYC" in cpu
        if not is_epyc:
            notes.append(f"{cpu!r} is not an AMD EPYC: SEV needs EPYC PSP firmware, flags alone "
                         "do not make it usable")
    elif any(features.values()):
        notes.append("the capture has no model name: flags alone cannot show this is an EPYC "
                     "(a client Ryzen advertises sme/sev/sev_es too); flags are not usability")
    if "hypervisor" in flags:
        notes.append("hypervisor flag set: this is a guest, whose cpuinfo hides SEV flags; "
                     "use the guest dmesg instead")
    if m and not features["SEV-SNP"] and features["SEV-ES"]:
        notes.append("no sev_snp flag: kernels before ~6.9 never show it, even on SNP-capable CPUs")
    evidence = [ln.rstrip() for ln in text.splitlines()
                if FLAGS.match(ln) or MODEL.match(ln) or VENDOR.match(ln)][:3]
    return CpuInfo(features=features, flags=flags, cpu=cpu, vendor=vend, is_epyc=is_epyc,
                   notes=notes, evidence_lines=evidence)
