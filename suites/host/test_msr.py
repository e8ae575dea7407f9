"""SYSCFG and RMP MSRs set up by BIOS and kernel (sev-facts.md §2).

One test per probe check; all read the same probe (fixtures/host.py, once per run).
A missing feature that --sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from collections.abc import Callable

from sevkit.host import Check


def test_msr_syscfg_smee(host_check: Callable[[str], Check]) -> None:
    """SME/SEV enabled in SYSCFG (MemEncryptionModEn) [SEV].

    Ref: sev-facts §2.2 bit 23; snphost 'SME'.
    """
    c = host_check("msr.syscfg.smee")
    assert c.ok, c.message


def test_msr_syscfg_snpen(host_check: Callable[[str], Check]) -> None:
    """SNP enabled in SYSCFG (SNPEn) [SEV-SNP].

    Ref: sev-facts §2.2 bit 24; snphost 'SEV-SNP'.
    """
    c = host_check("msr.syscfg.snpen")
    assert c.ok, c.message


def test_msr_rmp(host_check: Callable[[str], Check]) -> None:
    """RMP table reserved (RMP_BASE/RMP_END) [SEV-SNP].

    Ref: sev-facts §2.1; snphost 'Read RMP tables'.
    """
    c = host_check("msr.rmp")
    assert c.ok, c.message


def test_msr_rmp_coverage(host_check: Callable[[str], Check]) -> None:
    """RMP covers installed memory [SEV-SNP].

    Ref: sev-facts §3.4; AMDSEV#226.
    """
    c = host_check("msr.rmp_coverage")
    assert c.ok, c.message
