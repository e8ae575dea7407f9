"""IOMMU for SNP and the ASID budget (sev-facts.md §1.2, §3.5).

One test per probe check; all read the same probe (fixtures/host.py, once per run).
A missing feature that --sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from collections.abc import Callable

from sevkit.host import Check


def test_iommu_enabled(host_check: Callable[[str], Check]) -> None:
    """IOMMU enabled [SEV-SNP].

    Ref: sev-facts §3.5.
    """
    c = host_check("iommu.enabled")
    assert c.ok, c.message


def test_iommu_not_passthrough(host_check: Callable[[str], Check]) -> None:
    """IOMMU not in passthrough mode [SEV-SNP].

    Ref: sev-facts §3.5; AMDSEV#88.
    """
    c = host_check("iommu.not_passthrough")
    assert c.ok, c.message


def test_asid_misc_cgroup(host_check: Callable[[str], Check]) -> None:
    """ASID budget in the misc cgroup matches CPUID [SEV].

    Ref: sev-facts §1.2; kernel misc cgroup sev/sev_es.
    """
    c = host_check("asid.misc_cgroup")
    assert c.ok, c.message
