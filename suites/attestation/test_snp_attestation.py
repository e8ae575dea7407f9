"""SEV-SNP attestation: a guest on this host can prove itself (SNP ABI 56860 MSG_REPORT_REQ and
ATTESTATION_REPORT; sev-facts.md §4.3, §5.2, §6, §7, §10).

Every test runs against the session's SNP guest (fixtures/attestation.py). Where SNP cannot run
the guest fixture skips with the host evidence (or fails when --sev-expect sev-snp demands it).
Reports, the VCEK, expected measurement and verdicts go into the evidence folders.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from fixtures.attestation import min_tcb, save_verdict
from sevkit.attestation import AttestationReport, Expectations, appraise
from sevkit.attestation.guestfetch import GuestReport
from sevkit.attestation.layout import LAYOUT, SIGNATURE_OFFSET
from sevkit.attestation.measure import AMDSEV_HINT, snp_measured_boot_support
from sevkit.evidence import ArtifactDir

pytestmark = [pytest.mark.requires("SEV-SNP"), pytest.mark.guest_type("sev-snp")]

Fetched = tuple[GuestReport, AttestationReport]


def test_report_verifies(snp_report: Fetched, verify_snp: Any, artifacts: ArtifactDir) -> None:
    """The report verifies: the chain ends at a trusted root (an AMD ARK shipped with sevkit, by
    byte-equal public key, or a root the lab named with sev_trust_root; a host-supplied chain is
    never trusted by itself), ASK signed by the ARK, VCEK signed by the ASK (RSASSA-PSS SHA-384),
    ECDSA P-384 signature over bytes 0x000-0x29F, VCEK SPLs and hwID equal REPORTED_TCB and
    CHIP_ID. Ref: sev-facts §7.1, §7.3, §7.4; SNP ABI 56860 ATTESTATION_REPORT."""
    _, report = snp_report
    v = verify_snp(report)
    save_verdict(artifacts, v)
    assert v.verified, "; ".join(c.line() for c in v.failed()) + f" (trust: {v.trust_text()})"


def test_report_data_equals_nonce(get_snp_report: Any, artifacts: ArtifactDir) -> None:
    """REPORT_DATA (0x50, 64 bytes) equals the fresh random nonce the verifier chose.
    Ref: sev-facts §4.3 (configfs-tsm inblob), §6.1, §7.5 item 2."""
    nonce = secrets.token_bytes(64)
    _, report = get_snp_report(nonce)
    checks = appraise(report, Expectations(nonce=nonce, allow_debug=True, allow_migration_agent=True))
    artifacts.write_text("checks.txt", "\n".join(c.line() for c in checks) + "\n")
    assert report.report_data == nonce, f"REPORT_DATA {report.report_data.hex()} != nonce {nonce.hex()}"


# Fields that must differ between two reports for different nonces; every other byte must be equal.
VARYING = {"report_data", "signature_r", "signature_s"}


def test_two_reports_differ_only_in_report_data_and_signature(get_snp_report: Any,
                                                              artifacts: ArtifactDir) -> None:
    """Two reports requested with different nonces differ in REPORT_DATA and the signature only:
    the same guest keeps its REPORT_ID, MEASUREMENT, POLICY, CHIP_ID and TCBs. Ref: SNP ABI 56860
    ATTESTATION_REPORT (REPORT_ID is per guest); sev-facts §6.1."""
    _, a = get_snp_report(secrets.token_bytes(64))
    _, b = get_snp_report(secrets.token_bytes(64))
    changed = {f.name for f in LAYOUT if a.raw[f.offset:f.offset + f.size] != b.raw[f.offset:f.offset + f.size]}
    covered = {i for f in LAYOUT for i in range(f.offset, f.offset + f.size)}
    stray = [hex(i) for i in range(SIGNATURE_OFFSET) if i not in covered and a.raw[i] != b.raw[i]]
    artifacts.write_json("diff.json", {"changed_fields": sorted(changed), "changed_reserved_bytes": stray})
    assert changed - VARYING == set() and not stray, (
        f"fields that changed besides report data and signature: {sorted(changed - VARYING)}; "
        f"reserved bytes: {stray}")
    assert {"report_data", "signature_r", "signature_s"} <= changed, "nonce or signature did not change"


def test_measurement_equals_expected(snp_report: Fetched, expected_measurement: bytes, snp_guest: Any,
                                     artifacts: ArtifactDir) -> None:
    """MEASUREMENT equals sev-snp-measure's digest of the exact OVMF, kernel, initrd, command line,
    vCPU count and type the launcher used (measured direct boot, kernel-hashes=on; without it only
    the firmware and VMSAs are covered). Ref: sev-facts §7.5 item 5, §10."""
    _, report = snp_report
    artifacts.write_json("measurement.json", {"report": report.measurement.hex(),
                                              "expected": expected_measurement.hex(),
                                              "kernel_hashes": snp_guest.spec.kernel_hashes,
                                              "covers": ["OVMF", "VMSAs"] + (["kernel", "initrd", "cmdline"]
                                                                             if snp_guest.spec.kernel_hashes else [])})
    assert report.measurement == expected_measurement


def test_launch_measurement_covers_kernel_initrd_cmdline(snp_guest: Any, artifacts: ArtifactDir) -> None:
    """The SNP guest was launched with measured direct boot (QEMU kernel-hashes=on on an OVMF with an
    SNP_KERNEL_HASHES section and a SEV hash table), so its launch measurement binds the kernel,
    initrd and command line, not only the firmware and VMSAs; and the firmware ENFORCES those hashes
    (an AmdSevX64 build, whose kernel loader links BlobVerifierLibSevHashes): an OvmfPkgX64 build
    measures them but boots any kernel ("measured, not enforced"). The equality itself is
    test_measurement_equals_expected. Ref: sev-facts §7.5 item 5, §8.3 (kernel-hashes), §10; edk2
    OvmfPkg/AmdSev/AmdSevX64.dsc vs OvmfPkg/OvmfPkgX64.dsc (BlobVerifierLib)."""
    spec = snp_guest.spec
    fw = spec.firmware.image
    argv = list(getattr(snp_guest, "argv", []) or [])
    support = snp_measured_boot_support(fw, spec.kernel)     # the launched file, parsed by content
    artifacts.write_json("measured-boot.json", {
        "firmware": str(fw), "kernel": str(spec.kernel), "initrd": str(spec.initrd), "append": spec.append,
        "launched_with_kernel_hashes": spec.kernel_hashes, "firmware_finding": support.to_dict(),
        "qemu_argv_has_kernel_hashes": any("kernel-hashes=on" in a for a in argv) if argv else None})
    assert spec.kernel is not None, (
        f"the SNP guest boots from disk (firmware {fw}): its launch measurement covers no kernel, "
        "initrd or command line; give the image a direct-boot kernel")
    assert spec.kernel_hashes, (
        f"the SNP guest was launched without kernel-hashes=on: its launch measurement covers OVMF and "
        f"VMSAs only, not kernel {spec.kernel}, initrd {spec.initrd} or the command line. Firmware {fw} "
        f"({support.source}): {support.why}. Hint: {AMDSEV_HINT}")
    if argv:
        assert any("kernel-hashes=on" in a for a in argv), f"kernel-hashes=on missing from QEMU argv {argv}"
    if support.enforced is None:
        pytest.skip(f"not measured: whether firmware {fw} enforces the kernel hashes ({support.source}): "
                    f"{support.enforcement}")
    assert support.enforced, (
        f"measured, not enforced: firmware {fw} ({support.source}) is {support.enforcement}. The report's "
        f"measurement names kernel {spec.kernel}, but this firmware would boot another one. Hint: {AMDSEV_HINT}")


def test_policy_equals_launched_policy(snp_report: Fetched, snp_guest: Any, artifacts: ArtifactDir) -> None:
    """POLICY equals the policy QEMU was given, and DEBUG (bit 19) and MIGRATE_MA (bit 18) are
    clear unless that policy set them. Ref: sev-facts §6.2, §7.5 item 4."""
    _, report = snp_report
    launched = snp_guest.spec.effective_policy
    checks = appraise(report, Expectations(policy=launched, allow_debug=bool(launched & (1 << 19)),
                                           allow_migration_agent=bool(launched & (1 << 18))))
    artifacts.write_text("checks.txt", "\n".join(c.line() for c in checks) + "\n")
    bad = [c.line() for c in checks if not c.passed]
    assert not bad, bad


def test_vmpl_zero(snp_report: Fetched) -> None:
    """A report requested at VMPL 0 by a guest without an SVSM says VMPL 0.
    Ref: sev-facts §5.2 usage rules, §7.5 item 3."""
    _, report = snp_report
    assert report.vmpl == 0


def test_reported_tcb_not_below_minimum(snp_report: Fetched, request: pytest.FixtureRequest,
                                        artifacts: ArtifactDir) -> None:
    """REPORTED_TCB is at least the lab's minimum (sev_min_tcb), component by component.
    Ref: sev-facts §6.3, §7.5 item 7."""
    minimum = min_tcb(request.config)
    _, report = snp_report
    artifacts.write_text("reported_tcb.txt", f"{report.reported_tcb}\n")
    if minimum is None:
        pytest.skip(f"no minimum TCB configured (set sev_min_tcb); this host reports {report.reported_tcb}")
    checks = appraise(report, Expectations(min_tcb=minimum, allow_debug=True, allow_migration_agent=True))
    check = next(c for c in checks if c.name == "reported_tcb_at_least_minimum")
    assert check.passed, check.line()
