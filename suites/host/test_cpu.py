"""CPU identity and CPUID Fn8000_001F capabilities (sev-facts.md §1; snphost ok CPU Support/CPU Info).

One test per probe check; all read the same probe (fixtures/host.py, once per run).
A missing feature that --sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from collections.abc import Callable

from sevkit.host import Check


def test_cpu_vendor(host_check: Callable[[str], Check]) -> None:
    """AMD CPU [SEV].

    Ref: snphost ok 'AMD CPU'; APM CPUID Fn0000_0000.
    """
    c = host_check("cpu.vendor")
    assert c.ok, c.message


def test_cpu_epyc(host_check: Callable[[str], Check]) -> None:
    """EPYC processor (microcode support) [SEV].

    Ref: snphost ok 'Microcode support'.
    """
    c = host_check("cpu.epyc")
    assert c.ok, c.message


def test_cpu_generation(host_check: Callable[[str], Check]) -> None:
    """CPU family/model/stepping and generation [SEV].

    Ref: APM CPUID Fn0000_0001 EAX.
    """
    c = host_check("cpu.generation")
    assert c.ok, c.message


def test_cpuid_leaf_8000001f(host_check: Callable[[str], Check]) -> None:
    """CPUID memory-encryption leaf present [SEV].

    Ref: APM CPUID Fn8000_001F.
    """
    c = host_check("cpuid.leaf_8000001f")
    assert c.ok, c.message


def test_cpuid_sme(host_check: Callable[[str], Check]) -> None:
    """Secure Memory Encryption (SME) supported [SME].

    Ref: sev-facts §1.1 bit 0; snphost 'Secure Memory Encryption (SME)'.
    """
    c = host_check("cpuid.sme")
    assert c.ok, c.message


def test_cpuid_sev(host_check: Callable[[str], Check]) -> None:
    """Secure Encrypted Virtualization (SEV) supported [SEV].

    Ref: sev-facts §1.1 bit 1; snphost 'Secure Encrypted Virtualization (SEV)'.
    """
    c = host_check("cpuid.sev")
    assert c.ok, c.message


def test_cpuid_page_flush(host_check: Callable[[str], Check]) -> None:
    """Page flush MSR [SEV].

    Ref: sev-facts §1.1 bit 2; snphost 'Page flush MSR'.
    """
    c = host_check("cpuid.page_flush")
    assert c.ok, c.message


def test_cpuid_sev_es(host_check: Callable[[str], Check]) -> None:
    """Encrypted State (SEV-ES) supported [SEV-ES].

    Ref: sev-facts §1.1 bit 3; snphost 'Encrypted State (SEV-ES)'.
    """
    c = host_check("cpuid.sev_es")
    assert c.ok, c.message


def test_cpuid_sev_snp(host_check: Callable[[str], Check]) -> None:
    """Secure Nested Paging (SEV-SNP) supported [SEV-SNP].

    Ref: sev-facts §1.1 bit 4; snphost 'Secure Nested Paging (SEV-SNP)'.
    """
    c = host_check("cpuid.sev_snp")
    assert c.ok, c.message


def test_cpuid_vmpl(host_check: Callable[[str], Check]) -> None:
    """VM Permission Levels supported [SEV-SNP].

    Ref: sev-facts §1.1 bit 5; snphost 'VM Permission Levels'.
    """
    c = host_check("cpuid.vmpl")
    assert c.ok, c.message


def test_cpuid_num_vmpl(host_check: Callable[[str], Check]) -> None:
    """Number of VMPLs [SEV-SNP].

    Ref: sev-facts §1.2 EBX[15:12]; snphost 'Number of VMPLs'.
    """
    c = host_check("cpuid.num_vmpl")
    assert c.ok, c.message


def test_cpuid_features(host_check: Callable[[str], Check]) -> None:
    """Every documented Fn8000_001F EAX bit [SEV].

    Ref: sev-facts §1.1 table.
    """
    c = host_check("cpuid.features")
    assert c.ok, c.message


def test_cpuid_cbit(host_check: Callable[[str], Check]) -> None:
    """C-bit location [SEV].

    Ref: sev-facts §1.2 EBX[5:0]; snphost 'C-bit location'.
    """
    c = host_check("cpuid.cbit")
    assert c.ok, c.message


def test_cpuid_phys_addr_reduction(host_check: Callable[[str], Check]) -> None:
    """Physical address bit reduction [SEV].

    Ref: sev-facts §1.2 EBX[11:6]; snphost 'Physical address bit reduction'.
    """
    c = host_check("cpuid.phys_addr_reduction")
    assert c.ok, c.message


def test_cpuid_max_guests(host_check: Callable[[str], Check]) -> None:
    """Number of encrypted guests supported simultaneously [SEV].

    Ref: sev-facts §1.2 ECX; snphost.
    """
    c = host_check("cpuid.max_guests")
    assert c.ok, c.message


def test_cpuid_min_sev_asid(host_check: Callable[[str], Check]) -> None:
    """Minimum ASID value for SEV-enabled, SEV-ES disabled guest [SEV-ES].

    Ref: sev-facts §1.2 EDX; AMDSEV#84.
    """
    c = host_check("cpuid.min_sev_asid")
    assert c.ok, c.message


def test_cpu_microcode(host_check: Callable[[str], Check]) -> None:
    """CPU microcode revision [generic host].

    Ref: /proc/cpuinfo.
    """
    c = host_check("cpu.microcode")
    assert c.ok, c.message


def test_cpu_cpuinfo_flags(host_check: Callable[[str], Check]) -> None:
    """/proc/cpuinfo memory-encryption flags agree with CPUID [SEV].

    Ref: sev-facts §1.4.
    """
    c = host_check("cpu.cpuinfo_flags")
    assert c.ok, c.message
