"""Turn what people actually have into report bytes: raw binary (with or without trailing bytes),
hex text, base64 text, or an Azure HCL report that embeds the SNP report.

Azure HCL report (what an Azure CVM's vTPM NV index 0x01400001 holds; confidential-containers
trustee `az-snp-vtpm` and Microsoft's `az-cvm-vtpm` parse it this way): a 32-byte header that
starts with the ASCII magic ``HCLA`` (then u32 version, u32 report size, u32 request type, ...),
the 1184-byte SNP report at offset 0x20, then a runtime-data header at 0x4C0 (u32 data size,
u32 version, u32 report type, where 2 = SNP, 4 = TDX) and a JSON blob. We detect it by the
magic, and refuse HCL reports whose runtime header names another report type.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ..errors import ReportParseError
from .layout import REPORT_SIZE
from .report import AttestationReport, parse_report

HCL_MAGIC = b"HCLA"
HCL_REPORT_OFFSET = 0x20
HCL_RUNTIME_HEADER = HCL_REPORT_OFFSET + REPORT_SIZE          # 0x4C0
HCL_REPORT_TYPE_SNP = 2
_HEX = re.compile(rb"(0x)?[0-9a-fA-F]+")
_B64 = re.compile(rb"[A-Za-z0-9+/=_-]+")


@dataclass(frozen=True, slots=True)
class ReportInput:
    """The report bytes found in an input, and how they were found."""

    data: bytes              # starts with the report; may carry trailing bytes
    format: str              # binary, hex, base64, azure-hcl (+ inner format)
    source: str


def _is_text(data: bytes) -> bool:
    return bool(data) and all(32 <= b < 127 or b in b"\t\r\n" for b in data)


def _unwrap_hcl(data: bytes, source: str) -> bytes:
    if len(data) < HCL_RUNTIME_HEADER:
        raise ReportParseError(
            f"{source}: Azure HCL report (HCLA magic) is {len(data)} bytes; the SNP report inside "
            f"ends at {HCL_RUNTIME_HEADER:#x}", evidence={"length": len(data)})
    if len(data) >= HCL_RUNTIME_HEADER + 12:
        rtype = int.from_bytes(data[HCL_RUNTIME_HEADER + 8:HCL_RUNTIME_HEADER + 12], "little")
        if rtype != HCL_REPORT_TYPE_SNP:
            raise ReportParseError(f"{source}: Azure HCL report of type {rtype}, not SNP (2)",
                                   evidence={"hcl_report_type": rtype})
    return data[HCL_REPORT_OFFSET:HCL_RUNTIME_HEADER]


def decode_report_bytes(data: bytes, source: str = "input") -> ReportInput:
    """Find the report in ``data`` (see module docstring). Raises ReportParseError if none."""
    if not data:
        raise ReportParseError(f"{source}: empty input")
    fmt = "binary"
    if _is_text(data):
        text = b"".join(data.split())
        if _HEX.fullmatch(text) and len(text.removeprefix(b"0x")) % 2 == 0:
            data, fmt = bytes.fromhex(text.removeprefix(b"0x").decode()), "hex"
        elif _B64.fullmatch(text):
            try:
                data = base64.b64decode(text + b"=" * (-len(text) % 4),
                                        altchars=b"-_" if (b"-" in text or b"_" in text) else None,
                                        validate=True)
            except (binascii.Error, ValueError):
                raise ReportParseError(f"{source}: text that is neither hex nor base64") from None
            fmt = "base64"
        else:
            raise ReportParseError(f"{source}: text that is neither hex nor base64 "
                                   f"(starts {data[:24]!r})")
    if data.startswith(HCL_MAGIC):
        return ReportInput(_unwrap_hcl(data, source), "azure-hcl" if fmt == "binary" else f"azure-hcl/{fmt}",
                           source)
    return ReportInput(data, fmt, source)


def load_report(data: bytes, source: str = "input", *, product_hint: str | None = None) -> AttestationReport:
    """Decode and parse. Every failure is a ReportParseError naming ``source``."""
    found = decode_report_bytes(data, source)
    try:
        return parse_report(found.data, product_hint=product_hint)
    except ReportParseError as exc:
        raise ReportParseError(f"{source} ({found.format}): {exc.message}", evidence=exc.evidence) from None
