"""Issue 9 items 3 and 4: the host probe's CPUID signature names a version-2 report's product and
gives ``-cpu host`` its vcpu_sig for sev-snp-measure.

The signatures come from real captures: the CPUID family/model/stepping fields of the real v3
reports (constellation AWS Milan 19h/01h/1, trustee Genoa-family 19h/A0h/2). A host whose CPUID
leaf 1 reads like those chips must give the same product, and the CPUID encoding of those fields
must be what sev-snp-measure itself uses for the matching QEMU model (EPYC-Milan: 25/1/1).
"""

from __future__ import annotations

import pytest
from helpers.attestdata import read
from helpers.launch import snp_spec as _snp_spec
from sevsnpmeasure.vcpu_types import CPU_SIGS

from sevkit.attestation import load_report
from sevkit.attestation.hostcpu import host_product, host_signature, vcpu_sig
from sevkit.attestation.measure import LaunchInputs, expected_measurement
from sevkit.errors import MeasurementError
from sevkit.host import cpu


def _eax1(family: int, model: int, stepping: int) -> int:
    """CPUID Fn0000_0001 EAX as the APM encodes it (base family 0xF + extended family)."""
    ext_fam, base_fam = (family - 0xF, 0xF) if family > 0xF else (0, family)
    return (ext_fam << 20) | ((model >> 4) << 16) | (base_fam << 8) | ((model & 0xF) << 4) | stepping


@pytest.mark.parametrize(("rel", "product"), [("constellation/aws_report.txt", "Milan"),
                                               ("trustee/e2e-evidence.report.derived.bin", "Genoa")])
def test_host_cpuid_names_the_product_a_v3_report_would(rel: str, product: str) -> None:
    r = load_report(read(rel))
    assert r.product == product and r.cpuid_fam_id is not None and r.cpuid_mod_id is not None
    eax = _eax1(r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step or 0)
    identity = {"cpuid_1_eax": f"0x{eax:08x}"}
    sig = host_signature(identity)
    assert sig == cpu.Signature(r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step or 0)
    assert host_product(identity) == product


def test_v2_report_product_from_host() -> None:
    """The real Milan v2 report cannot name its product; the host's does (as the fixtures pass it)."""
    raw = read("virtee-sev/report_milan.bin")
    assert load_report(raw).product is None
    r = load_report(raw, product_hint=host_product({"cpuid_1_eax": "0x00a00f11"}))
    assert (r.product, r.product_source) == ("Milan", "hint")


def test_unknown_host_cpuid() -> None:
    assert host_signature({}) is None and host_product({"cpuid_1_eax": "junk"}) is None


def test_vcpu_sig_is_sev_snp_measures_encoding() -> None:
    aws = load_report(read("constellation/aws_report.txt"))
    sig = cpu.Signature(aws.cpuid_fam_id or 0, aws.cpuid_mod_id or 0, aws.cpuid_step or 0)
    assert vcpu_sig(sig) == CPU_SIGS["EPYC-Milan"] == 0x00A00F11
    assert cpu.signature(vcpu_sig(sig)) == sig           # and the probe decodes it back
    with pytest.raises(MeasurementError, match="CPUID signature"):
        vcpu_sig(None)


def test_cpu_host_measurement_uses_the_host_signature() -> None:
    """-cpu host: from_spec sets vcpu_sig from the probe; the digest equals sev-snp-measure's for the
    QEMU model with that signature (EPYC-Milan), and differs from EPYC-v4's."""
    spec = _snp_spec(cpu="host", kernel_hashes=False)
    milan = cpu.signature(0x00A00F11)
    inputs = LaunchInputs.from_spec(spec, host_cpu=milan)
    assert inputs.vcpu_sig == CPU_SIGS["EPYC-Milan"]
    digest = expected_measurement(inputs)
    named = LaunchInputs.from_spec(_snp_spec(cpu="EPYC-Milan", kernel_hashes=False))
    assert digest == expected_measurement(named)
    assert digest != expected_measurement(LaunchInputs.from_spec(_snp_spec(cpu="EPYC-v4", kernel_hashes=False)))
    with pytest.raises(MeasurementError, match="-cpu host"):
        LaunchInputs.from_spec(spec)                 # no probe signature: a clear error, not a guess
