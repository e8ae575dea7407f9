"""Facts from the host kernel log (sev-facts.md §3).

One test per probe check; all read the same probe (fixtures/host.py, once per run).
A missing feature that --sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from collections.abc import Callable

from sevkit.host import Check


def test_dmesg_readable(host_check: Callable[[str], Check]) -> None:
    """Kernel log readable and parsed [generic host].

    Ref: sev-facts §3.
    """
    c = host_check("dmesg.readable")
    assert c.ok, c.message


def test_dmesg_psp_errors(host_check: Callable[[str], Check]) -> None:
    """No SEV/SNP INIT failures in the kernel log [SEV].

    Ref: sev-facts §3.3.
    """
    c = host_check("dmesg.psp_errors")
    assert c.ok, c.message


def test_dmesg_firmware_api(host_check: Callable[[str], Check]) -> None:
    """PSP firmware API lines (ccp) [SEV].

    Ref: sev-facts §3.3.
    """
    c = host_check("dmesg.firmware_api")
    assert c.ok, c.message


def test_dmesg_kvm_asids(host_check: Callable[[str], Check]) -> None:
    """kvm_amd ASID ranges consistent with CPUID [SEV].

    Ref: sev-facts §1.2, §3.2.
    """
    c = host_check("dmesg.kvm_asids")
    assert c.ok, c.message


def test_dmesg_rmp(host_check: Callable[[str], Check]) -> None:
    """RMP table range in the kernel log [SEV-SNP].

    Ref: sev-facts §3.4.
    """
    c = host_check("dmesg.rmp")
    assert c.ok, c.message


def test_dmesg_iommu_snp(host_check: Callable[[str], Check]) -> None:
    """IOMMU SNP support in the kernel log [SEV-SNP].

    Ref: sev-facts §3.5.
    """
    c = host_check("dmesg.iommu_snp")
    assert c.ok, c.message
