"""SYSCFG and RMP MSRs set up by BIOS and kernel (sev-facts.md §2).

One test per registered probe check (sevkit.host.registry); all read the same probe (once per run).
Each test's outcome is the verdict on its check (HostReport.judge): a missing feature that
--sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from fixtures.host import HostCheck


def test_msr_syscfg_smee(host_check: HostCheck) -> None:
    """SME/SEV enabled in SYSCFG (MemEncryptionModEn) [SEV].

    Ref: sev-facts §2.2 bit 23; snphost 'SME'.
    """
    host_check("msr.syscfg.smee")


def test_msr_syscfg_snpen(host_check: HostCheck) -> None:
    """SNP enabled in SYSCFG (SNPEn) [SEV-SNP].

    Ref: sev-facts §2.2 bit 24; snphost 'SEV-SNP'.
    """
    host_check("msr.syscfg.snpen")


def test_msr_rmp(host_check: HostCheck) -> None:
    """RMP table reserved (RMP_BASE/RMP_END, or RMP_CFG for a segmented RMP) [SEV-SNP].

    Ref: sev-facts §2.1; snphost 'Read RMP tables'; arch/x86/virt/svm/sev.c snp_probe_rmptable_info().
    """
    host_check("msr.rmp")


def test_msr_rmp_coverage(host_check: HostCheck) -> None:
    """RMP covers installed memory [SEV-SNP].

    Ref: sev-facts §3.4; AMDSEV#226; arch/x86/virt/svm/sev.c setup_contiguous_rmptable(), setup_segmented_rmptable().
    """
    host_check("msr.rmp_coverage")
