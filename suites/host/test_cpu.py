"""CPU identity and CPUID Fn8000_001F capabilities (sev-facts.md §1; snphost ok CPU Support/CPU Info).

One test per registered probe check (sevkit.host.registry); all read the same probe (once per run).
Each test's outcome is the verdict on its check (HostReport.judge): a missing feature that
--sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from fixtures.host import HostCheck


def test_cpu_vendor(host_check: HostCheck) -> None:
    """AMD CPU [SEV].

    Ref: snphost ok 'AMD CPU'; APM CPUID Fn0000_0000.
    """
    host_check("cpu.vendor")


def test_cpu_epyc(host_check: HostCheck) -> None:
    """EPYC processor (microcode support) [SEV].

    Ref: snphost ok 'Microcode support'.
    """
    host_check("cpu.epyc")


def test_cpu_generation(host_check: HostCheck) -> None:
    """CPU family/model/stepping and generation [SEV].

    Ref: APM CPUID Fn0000_0001 EAX.
    """
    host_check("cpu.generation")


def test_cpuid_leaf_8000001f(host_check: HostCheck) -> None:
    """CPUID memory-encryption leaf present [SEV].

    Ref: APM CPUID Fn8000_001F.
    """
    host_check("cpuid.leaf_8000001f")


def test_cpuid_sme(host_check: HostCheck) -> None:
    """Secure Memory Encryption (SME) supported [SME].

    Ref: sev-facts §1.1 bit 0; snphost 'Secure Memory Encryption (SME)'.
    """
    host_check("cpuid.sme")


def test_cpuid_sev(host_check: HostCheck) -> None:
    """Secure Encrypted Virtualization (SEV) supported [SEV].

    Ref: sev-facts §1.1 bit 1; snphost 'Secure Encrypted Virtualization (SEV)'.
    """
    host_check("cpuid.sev")


def test_cpuid_page_flush(host_check: HostCheck) -> None:
    """Page flush MSR [SEV].

    Ref: sev-facts §1.1 bit 2; snphost 'Page flush MSR'.
    """
    host_check("cpuid.page_flush")


def test_cpuid_sev_es(host_check: HostCheck) -> None:
    """Encrypted State (SEV-ES) supported [SEV-ES].

    Ref: sev-facts §1.1 bit 3; snphost 'Encrypted State (SEV-ES)'.
    """
    host_check("cpuid.sev_es")


def test_cpuid_sev_snp(host_check: HostCheck) -> None:
    """Secure Nested Paging (SEV-SNP) supported [SEV-SNP].

    Ref: sev-facts §1.1 bit 4; snphost 'Secure Nested Paging (SEV-SNP)'.
    """
    host_check("cpuid.sev_snp")


def test_cpuid_vmpl(host_check: HostCheck) -> None:
    """VM Permission Levels supported [SEV-SNP].

    Ref: sev-facts §1.1 bit 5; snphost 'VM Permission Levels'.
    """
    host_check("cpuid.vmpl")


def test_cpuid_num_vmpl(host_check: HostCheck) -> None:
    """Number of VMPLs [SEV-SNP].

    Ref: sev-facts §1.2 EBX[15:12]; snphost 'Number of VMPLs'.
    """
    host_check("cpuid.num_vmpl")


def test_cpuid_features(host_check: HostCheck) -> None:
    """Every documented Fn8000_001F EAX bit [SEV].

    Ref: sev-facts §1.1 table.
    """
    host_check("cpuid.features")


def test_cpuid_cbit(host_check: HostCheck) -> None:
    """C-bit location [SEV].

    Ref: sev-facts §1.2 EBX[5:0]; snphost 'C-bit location'.
    """
    host_check("cpuid.cbit")


def test_cpuid_phys_addr_reduction(host_check: HostCheck) -> None:
    """Physical address bit reduction [SEV].

    Ref: sev-facts §1.2 EBX[11:6]; snphost 'Physical address bit reduction'.
    """
    host_check("cpuid.phys_addr_reduction")


def test_cpuid_max_guests(host_check: HostCheck) -> None:
    """Number of encrypted guests supported simultaneously [SEV].

    Ref: sev-facts §1.2 ECX; snphost.
    """
    host_check("cpuid.max_guests")


def test_cpuid_min_sev_asid(host_check: HostCheck) -> None:
    """Minimum ASID value for SEV-enabled, SEV-ES disabled guest [SEV-ES].

    Ref: sev-facts §1.2 EDX; AMDSEV#84.
    """
    host_check("cpuid.min_sev_asid")


def test_cpu_microcode(host_check: HostCheck) -> None:
    """CPU microcode revision [generic host].

    Ref: /proc/cpuinfo.
    """
    host_check("cpu.microcode")


def test_cpu_cpuinfo_flags(host_check: HostCheck) -> None:
    """/proc/cpuinfo memory-encryption flags agree with CPUID [SEV].

    Ref: sev-facts §1.4.
    """
    host_check("cpu.cpuinfo_flags")
