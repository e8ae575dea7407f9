"""Appraisal: does a (verified) report say what the lab expects? Each expectation is a named
Check with its observed value (sev-facts §7.5). Nothing here does cryptography.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError
from .checks import Check, compare, judge
from .report import AttestationReport

TCB_KEYS = {"bl": "blSPL", "bootloader": "blSPL", "tee": "teeSPL", "snp": "snpSPL",
            "ucode": "ucodeSPL", "microcode": "ucodeSPL", "fmc": "fmcSPL"}


def parse_min_tcb(text: str) -> dict[str, int]:
    """``bl=3,tee=0,snp=8,ucode=115[,fmc=1]`` -> {blSPL: 3, ...}; UsageError on anything else."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"([A-Za-z]+)\s*=\s*(0x[0-9a-fA-F]+|\d+)", part)
        if not m or m.group(1).lower() not in TCB_KEYS:
            raise UsageError(f"minimum TCB {text!r}: expected key=value pairs with keys "
                             "bl, tee, snp, ucode, fmc (e.g. bl=3,tee=0,snp=8,ucode=115)")
        value = int(m.group(2), 0)
        if not 0 <= value <= 255:
            raise UsageError(f"minimum TCB {part!r}: SPL values are 0..255")
        out[TCB_KEYS[m.group(1).lower()]] = value
    if not out:
        raise UsageError(f"minimum TCB {text!r} names no component")
    return out


def hex_bytes(text: str, what: str, size: int, *, pad: bool = False) -> bytes:
    """Hex from a command line or ini; ``pad`` right-pads with zeros (a short nonce)."""
    t = re.sub(r"\s+", "", text)
    t = t[2:] if t[:2].lower() == "0x" else t
    if not t:   # an unset shell variable must not switch the check off (nor become zero bytes)
        raise UsageError(f"{what}: empty value {text!r}; give {size} bytes of hex or leave the option out")
    try:
        value = bytes.fromhex(t)
    except ValueError:
        raise UsageError(f"{what}: {text[:40]!r} is not hex") from None
    if len(value) > size or (len(value) != size and not pad):
        raise UsageError(f"{what}: {len(value)} bytes, expected {'at most ' if pad else ''}{size}")
    return value.ljust(size, b"\0")


@dataclass(frozen=True, slots=True)
class Expectations:
    """What the lab expects. None = not requested (no check emitted)."""

    nonce: bytes | None = None            # 64 bytes (right-padded)
    measurement: bytes | None = None      # 48 bytes
    vmpl: int | None = None
    min_tcb: dict[str, int] | None = None
    host_data: bytes | None = None
    id_key_digest: bytes | None = None
    author_key_digest: bytes | None = None
    policy: int | None = None             # exact launched policy
    allow_debug: bool = False             # the DEBUG policy bit is checked unless allowed
    allow_migration_agent: bool = False   # MIGRATE_MA likewise
    smt: bool | None = None               # policy SMT bit as configured


def appraise(report: AttestationReport, exp: Expectations) -> tuple[Check, ...]:
    out: list[Check] = []
    p = report.policy
    if exp.nonce is not None:
        out.append(compare("report_data_equals_nonce", report.report_data.hex(), exp.nonce.hex()))
    if exp.measurement is not None:
        out.append(compare("measurement", report.measurement.hex(), exp.measurement.hex()))
    if exp.policy is not None:
        out.append(compare("policy", hex(p.raw), hex(exp.policy)))
    out.append(judge("policy_debug_off", exp.allow_debug or not p.debug,
                     f"DEBUG={int(p.debug)} (policy {p.raw:#x})", "DEBUG=1 allowed" if exp.allow_debug else "DEBUG=0"))
    out.append(judge("policy_migration_agent_absent", exp.allow_migration_agent or not p.migrate_ma,
                     f"MIGRATE_MA={int(p.migrate_ma)}",
                     "MIGRATE_MA=1 allowed" if exp.allow_migration_agent else "MIGRATE_MA=0"))
    if exp.smt is not None:
        out.append(compare("policy_smt", f"SMT={int(p.smt)}", f"SMT={int(exp.smt)}"))
    if exp.vmpl is not None:
        out.append(compare("vmpl", str(report.vmpl), str(exp.vmpl)))
    if exp.min_tcb is not None:
        have = report.reported_tcb.components()
        low = {k: (have.get(k), v) for k, v in exp.min_tcb.items() if have.get(k, -1) < v}
        out.append(judge("reported_tcb_at_least_minimum", not low, str(report.reported_tcb),
                         ", ".join(f"{k}>={v}" for k, v in exp.min_tcb.items()),
                         detail="; ".join(f"{k} {h} < {v}" for k, (h, v) in low.items())))
    if exp.host_data is not None:
        out.append(compare("host_data", report.host_data.hex(), exp.host_data.hex()))
    if exp.id_key_digest is not None:
        out.append(compare("id_key_digest", report.id_key_digest.hex(), exp.id_key_digest.hex()))
    if exp.author_key_digest is not None:
        out.append(compare("author_key_digest", report.author_key_digest.hex(), exp.author_key_digest.hex()))
    return tuple(out)
