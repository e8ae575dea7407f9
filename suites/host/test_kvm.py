"""KVM: /dev/kvm and kvm_amd parameters (sev-facts.md §4.1-4.2; snphost ok KVM Config).

One test per probe check; all read the same probe (fixtures/host.py, once per run).
A missing feature that --sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from collections.abc import Callable

from sevkit.host import Check


def test_kvm_dev(host_check: Callable[[str], Check]) -> None:
    """KVM support (/dev/kvm) [SEV].

    Ref: sev-facts §4.2; snphost 'KVM Support'.
    """
    c = host_check("kvm.dev")
    assert c.ok, c.message


def test_kvm_module(host_check: Callable[[str], Check]) -> None:
    """kvm_amd module loaded [SEV].

    Ref: sev-facts §4.1.
    """
    c = host_check("kvm.module")
    assert c.ok, c.message


def test_kvm_param_sev(host_check: Callable[[str], Check]) -> None:
    """SEV enabled in KVM [SEV].

    Ref: sev-facts §4.1; snphost 'SEV enabled in KVM'.
    """
    c = host_check("kvm.param.sev")
    assert c.ok, c.message


def test_kvm_param_sev_es(host_check: Callable[[str], Check]) -> None:
    """SEV-ES enabled in KVM [SEV-ES].

    Ref: sev-facts §4.1; snphost 'SEV-ES enabled in KVM'.
    """
    c = host_check("kvm.param.sev_es")
    assert c.ok, c.message


def test_kvm_param_sev_snp(host_check: Callable[[str], Check]) -> None:
    """SEV-SNP enabled in KVM [SEV-SNP].

    Ref: sev-facts §4.1; snphost 'SEV-SNP enabled in KVM'.
    """
    c = host_check("kvm.param.sev_snp")
    assert c.ok, c.message


def test_kvm_secure_tsc(host_check: Callable[[str], Check]) -> None:
    """(Optional Feature) Secure TSC [SEV-SNP].

    Ref: sev-facts §5.1, §9.1 '(Optional Feature) Secure TSC'.
    """
    c = host_check("kvm.secure_tsc")
    assert c.ok, c.message
