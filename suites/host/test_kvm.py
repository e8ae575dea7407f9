"""KVM: /dev/kvm and kvm_amd parameters (sev-facts.md §4.1-4.2; snphost ok KVM Config).

One test per registered probe check (sevkit.host.registry); all read the same probe (once per run).
Each test's outcome is the verdict on its check (HostReport.judge): a missing feature that
--sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from fixtures.host import HostCheck


def test_kvm_dev(host_check: HostCheck) -> None:
    """KVM support (/dev/kvm) [SEV].

    Ref: sev-facts §4.2; snphost 'KVM Support'.
    """
    host_check("kvm.dev")


def test_kvm_module(host_check: HostCheck) -> None:
    """kvm_amd module loaded [SEV].

    Ref: sev-facts §4.1.
    """
    host_check("kvm.module")


def test_kvm_param_sev(host_check: HostCheck) -> None:
    """SEV enabled in KVM [SEV].

    Ref: sev-facts §4.1; snphost 'SEV enabled in KVM'.
    """
    host_check("kvm.param.sev")


def test_kvm_param_sev_es(host_check: HostCheck) -> None:
    """SEV-ES enabled in KVM [SEV-ES].

    Ref: sev-facts §4.1; snphost 'SEV-ES enabled in KVM'.
    """
    host_check("kvm.param.sev_es")


def test_kvm_param_sev_snp(host_check: HostCheck) -> None:
    """SEV-SNP enabled in KVM [SEV-SNP].

    Ref: sev-facts §4.1; snphost 'SEV-SNP enabled in KVM'.
    """
    host_check("kvm.param.sev_snp")


def test_kvm_secure_tsc(host_check: HostCheck) -> None:
    """(Optional Feature) Secure TSC [SEV-SNP].

    Ref: sev-facts §5.1, §9.1 '(Optional Feature) Secure TSC'.
    """
    host_check("kvm.secure_tsc")
