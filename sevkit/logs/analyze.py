"""Read one captured file, detect its kind, and turn it into the `sevkit analyze` JSON object.

Bad input raises InputError with one line naming the file: missing, a directory, unreadable,
empty, binary, too large, truncated (cut mid-line with nothing complete to read) or of an
unknown kind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..userfiles import CAPTURE, STDIN, read_file, shown
from ..vocab import FEATURES
from . import detect as D
from . import patterns as P
from .cpuid import parse_cpuid_text
from .cpuinfo import parse_cpuinfo
from .dmesg import parse_guest_dmesg, parse_host_dmesg
from .kvmparams import parse_kvm_params
from .lines import MAX_LINE, cap_lines
from .okreport import parse_ok_report, parse_tcb_blocks, tcb_notes

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")      # `dmesg --color=always`
KERNEL_LINE = re.compile(r"^[ \t]*+\[[ \t]*+\d+\.\d+\]|\bkernel: ", re.M)
LOG_START = re.compile(r"^\s*(?:<\d>)?\[(?:[\s\d.]*\d|[A-Z][a-z]{2} )")   # "[    6.0", "[Wed Oct"

detect_kind = D.detect_kind


_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f\v") + b"\x7f"


def _is_binary(data: bytes) -> bool:
    """Mostly control bytes, invalid UTF-8 or non-ASCII. Counted with C-speed bytes/str methods
    (a per-character Python loop took 10 s on a 60 MB log)."""
    if b"\x00" in data:
        return True
    text = data.decode("utf-8", errors="replace")
    bad = len(data) - len(data.translate(None, _CONTROL)) + text.count("\ufffd")
    # kernel logs and tool output are ASCII but for a prompt glyph or two
    foreign = len(text) - len(text.encode("ascii", "ignore"))
    return bad > max(2, len(text) // 100) or foreign > max(16, len(text) // 4)


def read_capture(path: str | Path) -> str:
    """The text of a capture ("-" is standard input), or InputError naming the file and what is
    wrong with it (``sevkit.userfiles`` rules: a regular file, at most ``CAPTURE`` bytes)."""
    name = "<stdin>" if str(path) == STDIN else shown(path)
    data = read_file(path, CAPTURE, stdin=True, allow_empty=True)
    return _decode(name, data)


def _decode(name: str, data: bytes) -> str:
    ev = {"file": name}
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):     # PowerShell's UTF-16 redirects
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{name}: binary data, not a text capture (invalid UTF-16)", evidence=ev) from None
    data = ANSI.sub(b"", data.removeprefix(b"\xef\xbb\xbf"))
    if not data.strip():
        raise InputError(f"{name}: empty file", evidence={**ev, "bytes": len(data)})
    if _is_binary(data):
        raise InputError(f"{name}: binary data, not a text capture", evidence=ev)
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def _unknown(p: str, text: str) -> InputError:
    ev = {"file": p, "head": text[:200]}
    last = text.rsplit("\n", 1)[-1]
    # cut mid-line inside something log-like: a kernel timestamp or one of the words every
    # recognized line carries; other text without a final newline is just of unknown kind
    if last and (LOG_START.match(last) or P.HOST_WORDS.search(last) or P.GUEST_WORDS.search(last)):
        return InputError(f"{p}: truncated: the file ends mid-line and holds no complete "
                          "SEV, cpuinfo or cpuid line", evidence=ev)
    if KERNEL_LINE.search(text):
        return InputError(f"{p}: a kernel log with no SEV, SME, PSP or kvm_amd lines "
                          "(nothing to analyze)", evidence=ev)
    return InputError(f"{p}: unknown kind: not a host or guest dmesg, cpuinfo/lscpu, cpuid, "
                      "kvm_amd parameters or sevctl/snphost ok output", evidence=ev)


def _tcb_dict(blocks: list[tuple[str, dict[str, int | None]]]) -> list[dict[str, Any]]:
    return [{"owner": who, **b} for who, b in blocks]


def analyze_text(text: str, name: str = "<text>") -> dict[str, Any]:
    """The JSON object for one capture. Raises InputError for an unknown kind."""
    text, cut = cap_lines(text)
    kind = D.detect_kind(text)
    if kind == D.UNKNOWN:
        raise _unknown(shown(name) if name != "<stdin>" else name, text)
    out: dict[str, Any] = {"file": name, "kind": kind}
    notes: list[str]
    if kind == D.HOST_DMESG:
        h = parse_host_dmesg(text)
        out.update(features=h.features, firmware=h.firmware, asid_counts=h.asid_counts, errors=h.errors,
                   asid_ranges={k: list(v) for k, v in h.asid_ranges.items()},
                   rmp_range=[hex(x) for x in h.rmp_range] if h.rmp_range else None,
                   iommu_snp=h.iommu_snp, kvm_params=h.kvm_params, psp_device=h.psp_device,
                   cpu=h.cpu)
        notes, evidence = list(h.notes), h.evidence_lines
    elif kind == D.GUEST_DMESG:
        g = parse_guest_dmesg(text)
        out.update(features=g.features, firmware={}, asid_counts={}, errors=g.errors, vmpl=g.vmpl,
                   sev_guest_driver=g.sev_guest_driver, snp_cpuid_entries=g.snp_cpuid_entries)
        notes, evidence = list(g.notes), g.evidence_lines
    elif kind == D.CPUINFO:
        c = parse_cpuinfo(text)
        out.update(features=c.features, firmware={}, asid_counts={}, errors=[], cpu=c.cpu,
                   vendor=c.vendor, is_epyc=c.is_epyc)
        notes, evidence = list(c.notes), c.evidence_lines
    elif kind == D.CPUID:
        try:
            x = parse_cpuid_text(text)
        except InputError as exc:
            raise InputError(f"{name}: {exc}", evidence={"file": name}) from None
        out.update(features=x.features, firmware={}, asid_counts={}, errors=[], cpuid=x.fields,
                   registers=x.registers, vendor=x.vendor)
        notes, evidence = list(x.notes), x.evidence_lines
    elif kind == D.KVM_PARAMS:
        k = parse_kvm_params(text)
        out.update(features=k.features, firmware={}, asid_counts={}, errors=[], kvm_params=k.params)
        notes, evidence = list(k.notes), k.evidence_lines
    elif kind == D.SNPHOST_OK:
        o = parse_ok_report(text)
        out.update(features=o.features, firmware=o.firmware, asid_counts={}, errors=o.errors,
                   cpuid=o.fields, kvm=o.kvm, rmp_range=[hex(x) for x in o.rmp_range] if o.rmp_range else None,
                   tcb=_tcb_dict(o.tcb))
        notes, evidence = list(o.notes), o.evidence_lines
    else:   # TCB blocks only: no feature verdicts in them
        blocks = parse_tcb_blocks(text)
        out.update(features=dict.fromkeys(FEATURES), firmware={},
                   asid_counts={}, errors=[], tcb=_tcb_dict(blocks))
        notes, evidence = tcb_notes(blocks), [ln for ln in text.splitlines() if ln.strip()][:12]
    if not text.endswith("\n"):
        notes.append("the file does not end with a newline: its last line may be cut")
    if cut:
        notes.append(f"{cut} line(s) longer than {MAX_LINE} characters were cut to {MAX_LINE} before matching")
    out["notes"] = notes
    out["evidence_lines"] = evidence
    return out


def analyze_file(path: str | Path) -> dict[str, Any]:
    """Analyze one file; InputError (one line naming the file) for anything unusable."""
    text = read_capture(path)
    return analyze_text(text, "<stdin>" if str(path) == "-" else str(path))

