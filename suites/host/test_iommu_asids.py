"""IOMMU for SNP and the ASID budget (sev-facts.md §1.2, §3.5).

One test per registered probe check (sevkit.host.registry); all read the same probe (once per run).
Each test's outcome is the verdict on its check (HostReport.judge): a missing feature that
--sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from fixtures.host import HostCheck


def test_iommu_enabled(host_check: HostCheck) -> None:
    """IOMMU enabled [SEV-SNP].

    Ref: sev-facts §3.5.
    """
    host_check("iommu.enabled")


def test_iommu_not_passthrough(host_check: HostCheck) -> None:
    """IOMMU not in passthrough mode [SEV-SNP].

    Ref: sev-facts §3.5; AMDSEV#88.
    """
    host_check("iommu.not_passthrough")


def test_asid_misc_cgroup(host_check: HostCheck) -> None:
    """ASID budget in the misc cgroup matches CPUID [SEV].

    Ref: sev-facts §1.2; kernel misc cgroup sev/sev_es.
    """
    host_check("asid.misc_cgroup")


def test_asid_sev_plain(host_check: HostCheck) -> None:
    """ASIDs left for plain SEV guests [SEV].

    Ref: sev-facts §1.2 EDX; arch/x86/kvm/svm/sev.c sev_hardware_setup() 'SEV unusable'.
    """
    host_check("asid.sev_plain")
