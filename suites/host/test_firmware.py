"""PSP firmware through /dev/sev: SEV and SNP platform status
(sev-facts.md §5.1; snphost ok Platform Initialized/Compliance).

One test per probe check; all read the same probe (fixtures/host.py, once per run).
A missing feature that --sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from collections.abc import Callable

from sevkit.host import Check


def test_sev_dev(host_check: Callable[[str], Check]) -> None:
    """/dev/sev present [SEV].

    Ref: sev-facts §4.2.
    """
    c = host_check("sev.dev")
    assert c.ok, c.message


def test_sev_dev_readable(host_check: Callable[[str], Check]) -> None:
    """/dev/sev readable [SEV].

    Ref: snphost '/dev/sev readable'.
    """
    c = host_check("sev.dev_readable")
    assert c.ok, c.message


def test_sev_dev_writable(host_check: Callable[[str], Check]) -> None:
    """/dev/sev writable [SEV].

    Ref: snphost '/dev/sev writable'.
    """
    c = host_check("sev.dev_writable")
    assert c.ok, c.message


def test_sev_platform_status(host_check: Callable[[str], Check]) -> None:
    """SEV firmware version (SEV_PLATFORM_STATUS) [SEV].

    Ref: sev-facts §5.1; snphost 'SEV Firmware Version'.
    """
    c = host_check("sev.platform_status")
    assert c.ok, c.message


def test_sev_initialized(host_check: Callable[[str], Check]) -> None:
    """SEV initialized [SEV].

    Ref: sev-facts §5.1 state; snphost 'SEV initialized'.
    """
    c = host_check("sev.initialized")
    assert c.ok, c.message


def test_sev_es_initialized(host_check: Callable[[str], Check]) -> None:
    """SEV-ES initialized [SEV-ES].

    Ref: sev-facts §5.1 flags; snphost 'SEV-ES initialized'.
    """
    c = host_check("sev_es.initialized")
    assert c.ok, c.message


def test_snp_firmware_min(host_check: Callable[[str], Check]) -> None:
    """SNP minimum firmware 1.51 [SEV-SNP].

    Ref: sev-facts §3.3 SNP_MIN_API 1.51.
    """
    c = host_check("snp.firmware_min")
    assert c.ok, c.message


def test_snp_initialized(host_check: Callable[[str], Check]) -> None:
    """SNP initialized (SNP_PLATFORM_STATUS) [SEV-SNP].

    Ref: sev-facts §5.1; snphost 'SNP initialized'.
    """
    c = host_check("snp.initialized")
    assert c.ok, c.message


def test_snp_rmp_initialized(host_check: Callable[[str], Check]) -> None:
    """RMP table initialized [SEV-SNP].

    Ref: sev-facts §5.1; snphost 'RMP table initialized'.
    """
    c = host_check("snp.rmp_initialized")
    assert c.ok, c.message


def test_snp_alias_check(host_check: Callable[[str], Check]) -> None:
    """Alias check (AMD-SB-3015) [SEV-SNP].

    Ref: sev-facts §5.1 byte 3 bit 1; snphost 'Alias check'.
    """
    c = host_check("snp.alias_check")
    assert c.ok, c.message


def test_snp_tcb(host_check: Callable[[str], Check]) -> None:
    """Compare TCB values (platform vs reported) [SEV-SNP].

    Ref: sev-facts §6.3, §9.1 'Compare TCB values'.
    """
    c = host_check("snp.tcb")
    assert c.ok, c.message


def test_snp_kernel(host_check: Callable[[str], Check]) -> None:
    """Kernel supports SNP hosts [SEV-SNP].

    Ref: sev-facts §11.1.
    """
    c = host_check("snp.kernel")
    assert c.ok, c.message
