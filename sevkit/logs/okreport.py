"""Reports of `sevctl ok` / `snphost ok`, and TCB blocks of `snphost show tcb` / `snpguest`.

Features are the tool's verdict: PASS is True, FAIL is False, SKIP (or absent) is None.
Known mis-prints are corrected, not trusted (peers.md, sevctl PR#85 / enarx sevctl#93): sevctl
printed the C-bit as "Physical address bit reduction" (an operator-precedence bug), so a
reduction equal to the C-bit is reported as unknown. A report taken inside a guest
(/dev/kvm missing, microcode and SEV failing: sevctl#186) says nothing about a host, so its
features stay None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..vocab import FEATURES, KVM_PARAM_FEATURE
from . import patterns as P
from .dmesg import Features

# Linear on any line (possessive blanks, greedy label up to the first colon; callers strip): the lazy
# label before `\s*$` took seconds on a `[PASS] - a` line padded with blanks (issue 10 item 7).
OK_LINE = re.compile(r"^\s*+\[ ?(?P<st>PASS|FAIL|SKIP) ?\]\s*+-\s*+(?P<label>[^:]+)(?::\s*+(?P<val>.*))?$")
TCB_HEADER = re.compile(r"\bTCB Version:")
TCB_OWNER = re.compile(r"^\s*(?P<who>Platform|Reported)\s+TCB(?: version)?:", re.I)
TCB_FIELD = re.compile(r"^\s*(?P<name>Microcode|SNP|TEE|Boot Loader|FMC):\s*(?P<val>\S+)?\s*$")

_FEATURE_LABEL = {
    "Secure Memory Encryption (SME)": "SME",
    "Secure Encrypted Virtualization (SEV)": "SEV",
    "Encrypted State (SEV-ES)": "SEV-ES",
    "Secure Nested Paging (SEV-SNP)": "SEV-SNP",
}
_NUM_LABEL = {
    "C-bit location": "c_bit",
    "Physical address bit reduction": "phys_addr_reduction",
    "Number of encrypted guests supported simultaneously": "max_guests",
    "Minimum ASID value for SEV-enabled, SEV-ES disabled guest": "min_sev_asid",
    "Number of VMPLs": "num_vmpls",
}
_KVM_LABEL = {"SEV enabled in KVM": "SEV", "SEV-ES enabled in KVM": "SEV-ES",
              "SEV-SNP enabled in KVM": "SEV-SNP"}
_TCB_KEY = {"Microcode": "microcode", "SNP": "snp", "TEE": "tee", "Boot Loader": "bootloader", "FMC": "fmc"}

Tcb = dict[str, int | None]


@dataclass(frozen=True)
class OkReport:
    features: Features
    checks: list[tuple[str, str, str | None]]       # (status, label, value) as printed
    fields: dict[str, int | None]
    firmware: dict[str, str | int] = field(default_factory=dict)
    kvm: dict[str, bool | None] = field(default_factory=dict)
    rmp_range: tuple[int, int] | None = None
    tcb: list[tuple[str, Tcb]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    evidence_lines: list[str] = field(default_factory=list)


def parse_tcb_blocks(text: str) -> list[tuple[str, Tcb]]:
    """Every "Platform"/"Reported" TCB block, in file order, as (owner, fields)."""
    blocks: list[tuple[str, Tcb]] = []
    for line in text.splitlines():
        if m := TCB_OWNER.search(line):
            blocks.append((m["who"].lower(), {}))
        elif (m := TCB_FIELD.match(line)) and blocks:
            val = m["val"]
            blocks[-1][1][_TCB_KEY[m["name"]]] = int(val) if val and val.isdigit() else None
    return [b for b in blocks if b[1]]


def _int(val: str | None) -> int | None:
    if not val:
        return None
    m = re.match(r"(0x[0-9a-fA-F]+|\d+)", val)
    return int(m.group(1), 0) if m else None


def parse_ok_report(text: str) -> OkReport:
    features: Features = dict.fromkeys(FEATURES)
    checks: list[tuple[str, str, str | None]] = []
    fields: dict[str, int | None] = dict.fromkeys(_NUM_LABEL.values())
    firmware: dict[str, str | int] = {}
    kvm: dict[str, bool | None] = {}
    rmp: tuple[int, int] | None = None
    errors: list[str] = []
    notes: list[str] = []
    evidence: list[str] = []
    pending_param: str | None = None
    params: dict[str, bool] = {}
    for raw in text.splitlines():
        line = raw.rstrip()
        if pending_param and (pv := P.PARAM_VALUE.match(line)):
            params[pending_param] = pv["val"] in "Y1"
            pending_param = None
            continue
        pending_param = None
        if m := P.KVM_PARAM_CAT.search(line):
            pending_param = KVM_PARAM_FEATURE[m["name"].replace("-", "_")]
            continue
        m = OK_LINE.match(line)
        if not m:
            continue
        st, label, val = m["st"], m["label"].strip(), None if m["val"] is None else m["val"].rstrip()
        checks.append((st, label, val))
        evidence.append(line)
        if st == "FAIL":
            errors.append(f"FAIL {label}" + (f": {val}" if val else ""))
        verdict = {"PASS": True, "FAIL": False}.get(st)
        if label in _FEATURE_LABEL:
            features[_FEATURE_LABEL[label]] = verdict
        elif label in _NUM_LABEL and st == "PASS":
            fields[_NUM_LABEL[label]] = _int(val)
        elif label in _KVM_LABEL:
            kvm[_KVM_LABEL[label]] = verdict
        elif label == "SEV firmware version" and val:
            firmware["sev_api"] = val
        elif label == "RMP table addresses" and val and (
                r := re.match(r"(0x[0-9a-fA-F]+)\s*-\s*(0x[0-9a-fA-F]+)", val)):
            rmp = (int(r.group(1), 16), int(r.group(2), 16))

    red, cbit = fields["phys_addr_reduction"], fields["c_bit"]
    if red is not None and red == cbit:
        notes.append(f"'Physical address bit reduction: {red}' equals the C-bit: the known sevctl "
                     "mis-print (it shows the C-bit); true value unknown")
        fields["phys_addr_reduction"] = None
    for key, val in params.items():
        kvm[key] = val
    status = {label: st for st, label, _ in checks}
    if status.get("KVM supported") == "FAIL" and status.get("Microcode support") == "FAIL":
        notes.append("/dev/kvm missing and microcode check failing: report taken inside a guest, "
                     "not on a SEV host; its feature verdicts say nothing about a host")
        features = dict.fromkeys(FEATURES)
    if status.get("Encrypted State (SEV-ES)") == "SKIP" and features["SEV"]:
        notes.append("SEV-ES skipped although SEV passed: sevctl skips it on some CPU models "
                     "(sevctl#203); check kvm_amd sev_es" + (
                         f" (captured: {'Y' if params['SEV-ES'] else 'N'})" if "SEV-ES" in params else ""))
    blocks = parse_tcb_blocks(text)
    notes.extend(tcb_notes(blocks))
    return OkReport(features=features, checks=checks, fields=fields, firmware=firmware, kvm=kvm,
                    rmp_range=rmp, tcb=blocks, errors=errors, notes=notes, evidence_lines=evidence)


def tcb_notes(blocks: list[tuple[str, Tcb]]) -> list[str]:
    """Compare each platform block with the reported block that pairs with it."""
    notes: list[str] = []
    platform = [b for who, b in blocks if who == "platform"]
    reported = [b for who, b in blocks if who == "reported"]
    for p, r in zip(platform, reported, strict=False):
        diff = sorted(k for k in set(p) | set(r) if p.get(k) != r.get(k))
        if diff:
            notes.append("platform and reported TCB differ in " + ", ".join(diff))
    for _, b in blocks:
        if b.get("microcode") == 0 and b.get("fmc"):
            notes.append(f"a TCB with microcode 0 and FMC {b['fmc']}: a Milan/Genoa TCB decoded with the "
                         "Turin layout (snphost 0.6.0 bug, snphost#125); do not trust that block")
            break
    return notes
