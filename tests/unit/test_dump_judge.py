"""Verdict rules for the memory suite, on synthetic scans: control, breach, coverage, entropy, registers."""

from __future__ import annotations

import os

import pytest

from sevkit.errors import DumpError
from sevkit.memory import dump as D
from sevkit.memory.judge import CANNOT_SEE, judge_confidential, judge_control, judge_registers
from sevkit.memory.registers import RegisterView
from sevkit.memory.scan import scan_buffer

MiB = 1 << 20
NEEDLE, CONTROL = os.urandom(64), os.urandom(64)
LIVE = {"RIP": 0xFFFFFFFF81000000, "CR0": 0x80050033, "CR3": 0x1000}
RESET = {"EIP": 0xFFF0, "CR0": 0x60000010, "CR3": 0}


def scan_of(data: bytes, *, read: int | None = None, private_readable: bool = True) -> D.MemoryScan:
    res = scan_buffer(data, [NEEDLE, CONTROL], entropy_samples=64, to_gpa=lambda off: off)
    size = len(data) if read is None else read
    cov = D.Coverage("procmem", len(data), [D.RamRange(0, size)] if size else [], private_readable=private_readable)
    return D.MemoryScan("procmem", cov, res, 0.1, 0.1)


def plaintext(with_needle: bool) -> bytes:
    text = bytearray((b"guest kernel text and data " * 20000)[: 64 * 4096])
    if with_needle:
        text[5000:5064] = NEEDLE
    return bytes(text)


def ciphertext(with_needle: bool = False) -> bytes:
    data = bytearray(os.urandom(64 * 4096))
    if with_needle:
        data[100:164] = NEEDLE
    return bytes(data)


def test_control_found_passes_and_missing_errors() -> None:
    judge_control(scan_of(plaintext(True)), NEEDLE, CONTROL, {})
    with pytest.raises(DumpError, match=CANNOT_SEE):
        judge_control(scan_of(plaintext(False)), NEEDLE, CONTROL, {})
    with pytest.raises(DumpError, match="control needle"):
        judge_control(scan_of(plaintext(True) + CONTROL), NEEDLE, CONTROL, {})


def test_confidential_clean_ciphertext_passes() -> None:
    assert judge_confidential("sev-es", scan_of(ciphertext()), NEEDLE, CONTROL, {}) == []


def test_confidential_breach_fails_with_gpa() -> None:
    failures = judge_confidential("sev", scan_of(ciphertext(True)), NEEDLE, CONTROL, {})
    assert len(failures) == 1 and "readable in plaintext" in failures[0] and "0x64" in failures[0]


def test_plaintext_looking_memory_fails_the_entropy_rule() -> None:
    failures = judge_confidential("sev", scan_of(plaintext(False)), NEEDLE, CONTROL, {})
    assert len(failures) == 1 and "look like ciphertext" in failures[0]


def test_zero_bytes_read_is_never_a_pass() -> None:
    with pytest.raises(DumpError, match="read 0 bytes"):
        judge_confidential("sev-snp", scan_of(ciphertext(), read=0), NEEDLE, CONTROL, {})


def test_guest_memfd_snp_skips_the_entropy_rule_but_not_the_hit_rule() -> None:
    shared_view = bytes(64 * 4096)   # zeros where private pages would be
    assert judge_confidential("sev-snp", scan_of(shared_view, private_readable=False), NEEDLE, CONTROL, {}) == []
    leaked = bytearray(shared_view)
    leaked[0:64] = NEEDLE
    assert judge_confidential("sev-snp", scan_of(bytes(leaked), private_readable=False), NEEDLE, CONTROL, {})


def test_ciphertext_hiding_replaces_the_entropy_rule() -> None:
    """SYNTHETIC 0xFF memory (what a host reads of a ciphertext-hiding guest's private pages): the
    entropy rule would call it unencrypted, so it is not applied; a planted secret still fails."""
    hidden = b"\xff" * (64 * 4096)
    assert judge_confidential("sev-snp", scan_of(hidden), NEEDLE, CONTROL, {})       # entropy rule fails it
    evidence: dict[str, object] = {}
    assert judge_confidential("sev-snp", scan_of(hidden), NEEDLE, CONTROL, evidence, ciphertext_hiding=True) == []
    assert "not applied" in str(evidence["entropy_rule"])
    leaked = bytearray(hidden)
    leaked[0:64] = NEEDLE
    assert judge_confidential("sev-snp", scan_of(bytes(leaked)), NEEDLE, CONTROL, {}, ciphertext_hiding=True)


def test_registers() -> None:
    assert judge_registers("plain", RegisterView([LIVE]), {}) == []
    with pytest.raises(DumpError, match="plain guest's registers"):
        judge_registers("plain", RegisterView([RESET]), {})
    assert judge_registers("sev", RegisterView([LIVE]), {}) == []          # recorded, by design
    assert judge_registers("sev-es", RegisterView([RESET]), {}) == []
    assert judge_registers("sev-snp", RegisterView([], errors=["KVM_GET_REGS failed"]), {}) == []
    assert judge_registers("sev-es", RegisterView([LIVE]), {})             # live state leaks: FAIL
