"""What attestation takes from the host probe's CPU identity (HostReport.identity["cpuid_1_eax"]):

* the KDS product (Milan, Genoa, Turin) of a version-2 report, which has no CPUID fields and
  cannot tell Milan from Genoa by itself (report.py ``product_from_cpuid``);
* the vCPU signature sev-snp-measure needs for ``-cpu host``. QEMU's ``host`` model copies the
  host's family/model/stepping (target/i386/host-cpu.c host_cpu_max_instance_init:
  host_cpu_vendor_fms then the "family"/"model"/"stepping" properties), and the launch digest
  holds it in each VMSA's RDX; sev-snp-measure composes it with vcpu_types.cpu_sig(family,
  model, stepping), the CPUID Fn0000_0001_EAX encoding (AMD pub. 25481).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import MeasurementError
from ..host.cpu import Signature, signature
from .report import Product, product_from_cpuid


def host_signature(identity: Mapping[str, str]) -> Signature | None:
    """The host's CPUID family/model/stepping, None when the probe could not read CPUID leaf 1."""
    raw = identity.get("cpuid_1_eax", "")
    try:
        return signature(int(raw, 16)) if raw else None
    except ValueError:
        return None


def host_product(identity: Mapping[str, str]) -> Product | None:
    sig = host_signature(identity)
    return product_from_cpuid(sig.family, sig.model) if sig else None


def vcpu_sig(sig: Signature | None, *, why: str = "-cpu host") -> int:
    """sev-snp-measure's vcpu_sig for ``sig``; MeasurementError when the host's CPUID is unknown."""
    if sig is None:
        raise MeasurementError(f"{why}: the expected measurement needs the host's CPUID signature (leaf 1 "
                               "EAX), and the host probe has none", evidence={"cpu": why})
    from sevsnpmeasure.vcpu_types import cpu_sig
    value: int = cpu_sig(family=sig.family, model=sig.model, stepping=sig.stepping)
    return value
