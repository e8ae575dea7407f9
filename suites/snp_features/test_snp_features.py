"""Newer SEV-SNP features, each tested where the host offers it (issue 13).

Every test first asks its applicability rule (sevkit.host.applicability) with the capability probe as
input; where the capability is not offered the test SKIPs with a reason starting ``NOT-APPLICABLE:``
naming the capability, its value and source. Sources: AMD SEV-SNP ABI 56860 (guest policy, report
fields), linux arch/x86/include/uapi/asm/kvm.h (KVM_X86_SNP_POLICY_BITS, KVM_X86_SEV_VMSA_FEATURES,
VM types), Documentation/admin-guide/kernel-parameters.txt (kvm-amd.ciphertext_hiding_asids), QEMU
qapi/qom.json SevSnpGuestProperties, QEMU docs/system/igvm.rst.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import replace

import pytest

from fixtures.attestation import save_report
from fixtures.capabilities import allow_destructive, lab_igvm
from fixtures.guest import SuiteGuests
from fixtures.memory import positive_control, summary
from fixtures.options import expect_profile, settings
from sevkit import snpbits
from sevkit.attestation import AttestationReport, load_report
from sevkit.attestation.guestfetch import fetch_report
from sevkit.attestation.idblock import make_id_block
from sevkit.attestation.measure import LaunchInputs, expected_measurement
from sevkit.attestation.mitigations import MitigationFloors, judge_mitigations
from sevkit.errors import LaunchError, LaunchRefused, MeasurementError, SevkitError
from sevkit.evidence import ArtifactDir
from sevkit.host import applicability as ap
from sevkit.host import snpconfig
from sevkit.host.applicability import Applicability
from sevkit.host.capabilities import Capabilities
from sevkit.igvm.build import DEFAULT_SNP_POLICY, BuildInputs, build_ovmf_igvm
from sevkit.igvm.files import write_igvm
from sevkit.igvm.igvmmeasure import find_igvmmeasure, igvmmeasure_digest
from sevkit.igvm.measure import launch_digest
from sevkit.logs.patterns import GUEST_STATUS
from sevkit.memory.judge import judge_confidential, judge_pages
from sevkit.qemu.machine import GuestVM
from sevkit.qemu.spec import Firmware, GuestSpec

Applies = Callable[[Applicability], Applicability]
# What the capability probe must always list (present, or absent with the reason): issue 13's inputs.
ISSUE_13_CAPABILITIES = {
    "firmware.sev_status", "firmware.snp_status", "firmware.feature_info", "firmware.ciphertext_hiding",
    "firmware.mitigations", "kvm.vm_types", "kvm.snp_policy_bits", "kvm.vmsa_features", "kvm_amd.params",
    "kvm_amd.ciphertext_hiding_asids", "cpuid.secure_tsc", "cpuid.segmented_rmp", "cpuid.sev_tio",
    "report.platform_info", "qemu.sev_capabilities", "qemu.sev_snp_guest", "qemu.igvm",
    *(f"qemu.sev_snp_guest.{p}" for p in ("id-block", "id-auth", "author-key-enabled", "host-data", "secure-tsc",
                                          "debug-swap", "kernel-hashes")),
}
SEV_STATUS_MSR = 0xC0010131


def _boot_report(pool: SuiteGuests, spec: GuestSpec, name: str, art: ArtifactDir) -> tuple[GuestVM, AttestationReport]:
    vm = pool.new_vm(spec, name)
    vm.boot()
    try:
        got = fetch_report(vm.ssh, None, vmpl=0, timeout=pool.timeouts.command)
        report = load_report(got.report, f"report from {spec.name}")
    except BaseException:
        vm.shutdown(grace=0)
        raise
    save_report(art, "report", got, report)
    return vm, report


def _snp_spec(pool: SuiteGuests, name: str, **over: object) -> GuestSpec:
    pool.require("sev-snp")
    return pool.spec("sev-snp", name=name, **over)


@pytest.mark.parametrize("bit", snpbits.SNP_POLICY_FLAG_BITS,
                         ids=[snpbits.SNP_POLICY_BITS[b] for b in snpbits.SNP_POLICY_FLAG_BITS])
def test_snp_policy_bit_accepted(bit: int, host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                                 artifacts: ArtifactDir) -> None:
    """An SNP guest launched with an advertised policy bit runs and its report echoes the bit.
    Spec: SNP ABI Guest Policy; KVM_X86_SNP_POLICY_BITS."""
    applies(ap.policy_bit(host_caps, bit))
    mask = int(host_caps.get("kvm.snp_policy_bits").value["mask"], 16)
    policy = 0x30000 | 1 << bit
    spec = _snp_spec(guest_pool, f"snp-pol{bit}", policy=policy, snp_policy_allowed=mask)
    vm, report = _boot_report(guest_pool, spec, f"guest-snp-policy-{bit}", artifacts)
    try:
        assert report.policy.raw >> bit & 1, f"report POLICY {report.policy.raw:#x} lacks bit {bit}"
        assert report.policy.raw == policy, f"report POLICY {report.policy.raw:#x}, launched with {policy:#x}"
    finally:
        vm.shutdown()


@pytest.mark.parametrize("bit", snpbits.SNP_POLICY_FLAG_BITS,
                         ids=[snpbits.SNP_POLICY_BITS[b] for b in snpbits.SNP_POLICY_FLAG_BITS])
def test_snp_policy_bit_not_advertised_refused(bit: int, host_caps: Capabilities, applies: Applies,
                                               guest_pool: SuiteGuests, artifacts: ArtifactDir) -> None:
    """A policy bit KVM does not advertise is refused at launch by KVM or the firmware (sevkit does not
    pre-check here, so the refusal is theirs). Spec: KVM_X86_SNP_POLICY_BITS; SNP ABI LAUNCH_START."""
    applies(ap.policy_bit_refused(host_caps, bit))
    spec = _snp_spec(guest_pool, f"snp-nopol{bit}", policy=0x30000 | 1 << bit)
    vm = guest_pool.new_vm(spec, f"guest-snp-policy-{bit}-refused")
    try:
        exc = vm.expect_launch_failure(ap.POLICY_REFUSED.pattern)
    except LaunchRefused as own:
        pytest.fail(f"sevkit refused the launch itself, so KVM/firmware were never asked: {own}")
    finally:
        vm.shutdown(grace=0)
    artifacts.write_text("refusal.txt", str(exc) + "\n")


def test_snp_ciphertext_hiding(host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                               request: pytest.FixtureRequest, artifacts: ArtifactDir) -> None:
    """With ciphertext hiding enabled, an SNP guest launched with policy bit 24 runs and its report shows
    CIPHERTEXT_HIDING (policy) and CIPHERTEXT_HIDING_EN (PLATFORM_INFO bit 4). Then the targeted memory test
    (suites/memory's procedure, with the plain guest as positive control) plants a secret in it and
    records what each host view reads at the exact pages that hold the secret: never the secret, and
    never ciphertext, since with ciphertext hiding "the host reads will see constant default values
    (0xff)" (KVM SEV-SNP CipherTextHiding support, kvm-amd.ciphertext_hiding_asids). Pages no view
    reaches (guest_memfd) are reported as such. Spec: SNP ABI Guest Policy bit 24, PLATFORM_INFO bit 4."""
    applies(ap.ciphertext_hiding(host_caps))
    policy = 0x30000 | 1 << 24
    vm, report = _boot_report(guest_pool, _snp_spec(guest_pool, "snp-cth", policy=policy), "guest-snp-cth", artifacts)
    try:
        assert report.policy.ciphertext_hiding, f"report POLICY {report.policy.raw:#x} lacks CIPHERTEXT_HIDING"
        assert report.platform_info.ciphertext_hiding_en, "report PLATFORM_INFO lacks CIPHERTEXT_HIDING_EN"
        probes = request.getfixturevalue("memory_probe")       # only where this applies: no scan otherwise
        method = settings(request.config).dump_methods[0]
        control = positive_control(guest_pool, probes, method)
        planted, ms = probes(vm).plant_and_scan(method)
        evidence = summary(planted, ms, role="sev-snp guest with ciphertext hiding",
                           positive_control=control["scan"]["method"])
        failures = judge_confidential("sev-snp", ms, planted.secret.needle, planted.secret.control, evidence,
                                      ciphertext_hiding=True)
        page_failures, evidence["proven"] = judge_pages("sev-snp", ms.page_views, evidence, ciphertext_hiding=True)
        artifacts.write_json("memory-scan.json", evidence)
        failures += page_failures
        assert not failures, "; ".join(failures)
    finally:
        vm.shutdown()


def test_snp_host_data(host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                       artifacts: ArtifactDir) -> None:
    """HOST_DATA in the report equals the host-data given at launch (32 random bytes per run).
    Spec: SNP ABI ATTESTATION_REPORT HOST_DATA; qapi/qom.json host-data."""
    applies(ap.host_data(host_caps))
    data = os.urandom(32)
    vm, report = _boot_report(guest_pool, _snp_spec(guest_pool, "snp-hostdata", host_data=data),
                              "guest-snp-host-data", artifacts)
    try:
        assert report.host_data == data, f"HOST_DATA {report.host_data.hex()} != launched {data.hex()}"
    finally:
        vm.shutdown()


def _id_block_specs(pool: SuiteGuests, name: str, art: ArtifactDir) -> tuple[GuestSpec, GuestSpec, bytes, bytes]:
    """(spec with this run's ID block, the same with its signed launch digest altered, ID key digest, author
    key digest): one key pair per run, kept out of the report folder."""
    spec = _snp_spec(pool, name)
    digest = expected_measurement(LaunchInputs.from_spec(spec))
    blk = make_id_block(digest, pool.run_root / f"{name}-keys")
    art.write_json("id-block.json", {"launch_digest": digest.hex(), "id_key_digest": blk.id_key_digest.hex(),
                                     "author_key_digest": blk.author_key_digest.hex()})
    good, bad = ((pool.spec("sev-snp", name=f"{name}{tag}", policy=b.policy, id_block=b.id_block, id_auth=b.id_auth,
                            author_key=True)) for tag, b in (("", blk), ("-tampered", blk.tampered())))
    return good, bad, blk.id_key_digest, blk.author_key_digest


def test_snp_id_block(host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                      artifacts: ArtifactDir) -> None:
    """A launch with an ID block and ID auth (keys generated per run) runs, and the report carries
    ID_KEY_DIGEST and AUTHOR_KEY_DIGEST of those keys. Spec: SNP ABI SNP_LAUNCH_FINISH, ATTESTATION_REPORT."""
    applies(ap.id_block(host_caps))
    spec, _, id_digest, author_digest = _id_block_specs(guest_pool, "snp-idblock", artifacts)
    vm, report = _boot_report(guest_pool, spec, "guest-snp-id-block", artifacts)
    try:
        assert report.id_key_digest == id_digest, "ID_KEY_DIGEST is not the digest of this run's ID key"
        assert report.author_key_digest == author_digest, "AUTHOR_KEY_DIGEST is not this run's author key"
    finally:
        vm.shutdown()


def test_snp_id_block_tampered_refused(host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                                       artifacts: ArtifactDir) -> None:
    """An ID block whose signed launch digest was altered is refused at launch (SNP_LAUNCH_FINISH), while
    the same ID block unaltered (same keys, same launch) passes it first: the positive control, so the
    refusal is the tampering's and not a wrong digest or key. Spec: SNP ABI SNP_LAUNCH_FINISH
    (BAD_SIGNATURE / BAD_MEASUREMENT)."""
    applies(ap.id_block(host_caps))
    good, bad, _, _ = _id_block_specs(guest_pool, "snp-idblock-ctl", artifacts)
    vm = guest_pool.new_vm(good, "guest-snp-id-block-control")
    try:
        vm.launch()                     # returns after `cont`, i.e. after SNP_LAUNCH_FINISH accepted the block
    except LaunchError as exc:
        raise MeasurementError(f"the untampered ID block was refused too, so the tampered one's refusal proves "
                               f"nothing (predicted launch digest or keys wrong?): {exc}",
                               evidence=exc.evidence) from exc
    finally:
        vm.shutdown(grace=0)
    vm = guest_pool.new_vm(bad, "guest-snp-id-block-tampered")
    try:
        exc = vm.expect_launch_failure(ap.ID_BLOCK_REFUSED.pattern)
    finally:
        vm.shutdown(grace=0)
    artifacts.write_text("refusal.txt", str(exc) + "\n")


def _guest_status(vm: GuestVM, art: ArtifactDir) -> tuple[list[str], int]:
    log = vm.run("dmesg").check().stdout
    line = next((ln for ln in log.splitlines() if GUEST_STATUS.search(ln)), None)
    assert line is not None, "the guest kernel printed no 'SEV: Status:' line"
    msr = int(vm.run(f"rdmsr -0 {SEV_STATUS_MSR:#x}").check().stdout.strip(), 16)
    art.write_json("sev-status.json", {"line": line, "sev_status": hex(msr)})
    m = GUEST_STATUS.search(line)
    assert m is not None
    return m.group("tok").split(), msr


def _launched_exactly(vm: GuestVM, art: ArtifactDir) -> tuple[list[str], int]:
    """The guest's 'SEV: Status:' tokens and SEV_STATUS, held to exactly the VMSA features the launch asked
    for (GuestSpec.vmsa_features: QEMU adds no others; SEV_STATUS bit n+2 = VMSA bit n) and to each other."""
    tokens, msr = _guest_status(vm, art)
    want = snpbits.sev_status_for_vmsa(vm.spec.vmsa_features)
    assert msr == want, (f"SEV_STATUS {msr:#x} ({snpbits.names(msr, snpbits.SEV_STATUS_NAMES)}), launched with VMSA "
                         f"features {vm.spec.vmsa_features:#x}, which give {want:#x} "
                         f"({snpbits.names(want, snpbits.SEV_STATUS_NAMES)})")
    assert tokens == snpbits.names(msr, snpbits.SEV_STATUS_NAMES), \
        f"'SEV: Status:' names {tokens}, SEV_STATUS {msr:#x} means {snpbits.names(msr, snpbits.SEV_STATUS_NAMES)}"
    return tokens, msr


def test_snp_secure_tsc(host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                        artifacts: ArtifactDir) -> None:
    """An SNP guest launched with secure-tsc=on runs with exactly SNP + SecureTSC: SEV_STATUS is SEV, SEV-ES,
    SEV-SNP and SecureTSC (bit 11), and its 'SEV: Status:' line names exactly those.
    Spec: VMSA SEV_FEATURES bit 9; msr-index.h MSR_AMD64_SNP_SECURE_TSC_BIT; QEMU sev.c sev_set_feature."""
    applies(ap.secure_tsc(host_caps))
    vm = guest_pool.new_vm(_snp_spec(guest_pool, "snp-stsc", secure_tsc=True), "guest-snp-secure-tsc")
    try:
        vm.boot()
        tokens, msr = _launched_exactly(vm, artifacts)
        assert msr >> 11 & 1 and "SecureTSC" in tokens
    finally:
        vm.shutdown()


def test_snp_debug_swap(host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                        artifacts: ArtifactDir) -> None:
    """An SNP guest launched with debug-swap=on runs with exactly SNP + DebugSwap: SEV_STATUS bit 7 and the
    'SEV: Status:' token DebugSwap, nothing else beyond SNP.
    Spec: VMSA SEV_FEATURES bit 5 (SVM_SEV_FEAT_DEBUG_SWAP); QEMU sev-common debug-swap; kvm_amd debug_swap."""
    applies(ap.debug_swap(host_caps))
    vm = guest_pool.new_vm(_snp_spec(guest_pool, "snp-dswap", debug_swap=True), "guest-snp-debug-swap")
    try:
        vm.boot()
        tokens, msr = _launched_exactly(vm, artifacts)
        assert msr >> 7 & 1 and "DebugSwap" in tokens
    finally:
        vm.shutdown()


def test_snp_vmsa_features_match_sev_status(host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                                            artifacts: ArtifactDir) -> None:
    """The session's SNP guest (launched with no VMSA feature beyond SNPActive) runs with exactly that: its
    SEV_STATUS and 'SEV: Status:' line agree, and every SNP feature it shows is one KVM offers
    (KVM_X86_SEV_VMSA_FEATURES never lists SNPActive, bit 0: KVM sets it itself; SEV_STATUS bit n+2 = VMSA bit n)."""
    applies(ap.vmsa_features(host_caps))
    offered = int(host_caps.get("kvm.vmsa_features").value["mask"], 16)
    vm = guest_pool.get("sev-snp")
    _, msr = _launched_exactly(vm, artifacts)
    running = msr >> 3 << 1              # VMSA bits 1.. from SEV_STATUS bits 3.. (SNPActive excluded)
    assert running & ~offered == 0, f"guest runs VMSA features {running:#x} beyond KVM's offer {offered:#x}"


def test_snp_mitigation_vectors(host_caps: Capabilities, applies: Applies, request: pytest.FixtureRequest,
                                host_mitigations: Callable[[], dict[str, int]], artifacts: ArtifactDir) -> None:
    """Report v5 LAUNCH_MIT_VECTOR / CURRENT_MIT_VECTOR agree with the host's SNP_VERIFY_MITIGATION vectors
    (/sys/firmware/sev/vulnerabilities, read just before and just after a fresh report): verified ⊆
    supported, verified ⊆ CURRENT, LAUNCH ⊆ CURRENT, and the lab's floors (--sev-min-launch-mit-vector,
    --sev-min-current-mit-vector, go-sev-guest's rule) hold; the evidence lists the verified bits.
    Spec: SNP ABI 1.58 ATTESTATION_REPORT 0x1F8/0x200 and SNP_VERIFY_MITIGATION; linux psp-sev.h
    sev_data_snp_verify_mitigation_dst (the rules and their sources: sevkit.attestation.mitigations)."""
    a = applies(ap.mitigation_vectors(host_caps))
    floors = MitigationFloors(*settings(request.config).min_mit_vectors)
    get_report = request.getfixturevalue("get_snp_report")   # boots the SNP guest only where this applies
    before = host_mitigations()
    _, report = get_report()
    after = host_mitigations()
    if report.current_mit_vector is None or report.launch_mit_vector is None:
        pytest.skip(f"{ap.NOT_APPLICABLE}: report version {report.version} carries no mitigation vectors "
                    f"(v5 does); {a.reason}")
    verdict = judge_mitigations(launch=report.launch_mit_vector, current=report.current_mit_vector,
                                host_before=before, host_after=after, floors=floors)
    artifacts.write_json("mitigations.json", {**verdict.evidence, "failures": list(verdict.failures)})
    assert not verdict.failures, "; ".join(verdict.failures)


def test_sev_es_offered_or_withdrawn(host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                                     request: pytest.FixtureRequest, artifacts: ArtifactDir) -> None:
    """SEV-ES guests are offered, or taken away: by a host setting (ciphertext_hiding_asids=max, kvm_amd
    sev_es=N, no SEV-ES ASIDs) or by the firmware (CVE-2025-48514 / AMD-SB-3023). Then the sev-es kind is
    NOT-APPLICABLE with that cause as evidence (the firmware version, the missing VM type or the launch
    refusal LAUNCH_START fw_error 21, AMDESE/AMDSEV#282), and the sev-es profile, which demands SEV-ES
    guests, FAILs saying why; the sev-snp profile does not demand them."""
    profile = expect_profile(request.config)
    note = ap.profile_note(host_caps, profile)
    if note:
        pytest.fail(note, pytrace=False)
    a = applies(ap.sev_es_offered(host_caps))
    guest_pool.require("sev-es")
    vm = guest_pool.new_vm(guest_pool.spec("sev-es", name="es-offered"), "guest-sev-es-offered")
    try:
        vm.launch()
    except LaunchError as exc:
        artifacts.write_text("refusal.txt", str(exc) + "\n")
        if ap.launch_refusal_withdraws_sev_es(str(exc) + str(exc.evidence)):
            why = f"SEV-ES withdrawn by firmware: LAUNCH_START fw_error {ap.FW_FEATURE_NOT_SUPPORTED}"
            if profile == "sev-es":
                pytest.fail(f"profile {profile} demands SEV-ES guests, which this host cannot deliver: {why}",
                            pytrace=False)
            pytest.skip(f"{ap.NOT_APPLICABLE}: {why} ({a.skip_reason})")
        raise
    finally:
        vm.shutdown(grace=0)


def test_snp_config_set_reset(host_caps: Capabilities, applies: Applies, request: pytest.FixtureRequest,
                              artifacts: ArtifactDir) -> None:
    """SNP_SET_CONFIG sets the reported TCB and MASK_CHIP_ID as `snphost config set` does: SNP_PLATFORM_STATUS
    and the next report (REPORTED_TCB, CHIP_ID all zero) reflect it; the prior configuration is set back
    on every path and checked. Only with --sev-allow-destructive; never SNP_COMMIT.
    Spec: psp-sev.h SNP_SET_CONFIG / sev_user_data_snp_config; sev-guest.rst 2.6; SNP ABI SNP_CONFIG,
    ATTESTATION_REPORT CHIP_ID ("zero if MASK_CHIP_ID")."""
    applies(ap.snp_config(host_caps, allow_destructive=allow_destructive(request.config)))
    dev = snpconfig.DevSev()
    before = snpconfig.read_state(dev)            # no /dev/sev (or no SNP init): ERROR before any guest boots
    get_report = request.getfixturevalue("get_snp_report")    # boots the SNP guest before the change
    target = snpconfig.lowered_tcb(before.reported_tcb)
    cfg = snpconfig.SnpConfig(before.reported_tcb if target is None else target, mask_chip_id=True,
                              mask_chip_key=before.mask_chip_key)      # a masked key = unsigned reports
    evidence: dict[str, object] = {"before": before.to_json(), "set": cfg.to_json()}
    try:
        with snpconfig.configured(dev, cfg) as (_, after):
            evidence["after_set"] = after.to_json()
            _, report = get_report()
    finally:
        evidence["after_restore"] = snpconfig.read_state(dev).to_json()
        artifacts.write_json("snp-config.json", evidence)
    assert after.config() == cfg, f"SNP_PLATFORM_STATUS shows {after.config().to_json()} after setting {cfg.to_json()}"
    reported = int.from_bytes(report.reported_tcb.raw, "little")
    assert reported == cfg.reported_tcb, f"report REPORTED_TCB {reported:#x} != configured {cfg.reported_tcb:#x}"
    assert not any(report.chip_id), "report CHIP_ID is not all zero with MASK_CHIP_ID set"
    if target is None:
        pytest.skip(f"MASK_CHIP_ID set and restored; the reported TCB {before.reported_tcb:#x} has no SVN "
                    "to lower, so a reported-TCB change could not be shown")


def test_snp_igvm_launch(host_caps: Capabilities, applies: Applies, guest_pool: SuiteGuests,
                         artifacts: ArtifactDir, request: pytest.FixtureRequest) -> None:
    """Second SNP launch path: the SNP guest boots from an IGVM file (-object igvm-cfg, -machine igvm-cfg=),
    built per run from the OVMF the planner chose (or the lab's --sev-igvm file), and its report's
    MEASUREMENT is the launch digest predicted for that file (coconut-svsm igvmmeasure's algorithm as
    QEMU/KVM apply it; sevkit.igvm.measure). Spec: QEMU docs/system/igvm.rst; SNP ABI SNP_LAUNCH_UPDATE."""
    applies(ap.igvm(host_caps))
    base = _snp_spec(guest_pool, "snp-igvm")
    img = lab_igvm(request.config)
    if img is not None and img.file.vp_count:
        base = replace(base, vcpus=img.file.vp_count)     # a lab file is built for its own vCPU count
    if img is None:
        inp = LaunchInputs.from_spec(base)
        img = write_igvm(guest_pool.run_root / "snp-igvm.igvm", build_ovmf_igvm(BuildInputs(
            ovmf=inp.ovmf, vcpus=inp.vcpus, vcpu_type=inp.vcpu_type, vcpu_sig=inp.vcpu_sig,
            policy=base.effective_policy or DEFAULT_SNP_POLICY)))
    predicted = launch_digest(img.file, base.vcpus)
    evidence: dict[str, object] = {"igvm": img.to_json(), "built": lab_igvm(request.config) is None,
                                   "predicted": predicted.to_json()}
    tool = find_igvmmeasure()           # coconut-svsm's own predictor, where the lab installed it
    theirs = None if tool is None else igvmmeasure_digest(tool, img.path)
    if theirs is not None:
        evidence["igvmmeasure"] = {"tool": tool, "launch_digest": theirs.hex()}
    artifacts.write_json("igvm.json", evidence)
    if theirs not in (None, predicted.digest):
        # two predictors disagreeing says nothing about the host: no verdict (ERROR), with both values
        raise MeasurementError(f"{tool} predicts {theirs.hex() if theirs else ''}, sevkit {predicted.digest.hex()} for "
                               f"{img.path}: the predictors disagree, so no expected MEASUREMENT", evidence=evidence)
    spec = replace(base, firmware=Firmware(), igvm=img.path, kernel_hashes=False,
                   policy=predicted.policy if predicted.policy is not None else base.policy)
    vm, report = _boot_report(guest_pool, spec, "guest-snp-igvm", artifacts)
    try:
        evidence["reported"] = report.measurement.hex()
        artifacts.write_json("igvm.json", evidence)
        assert report.measurement == predicted.digest, \
            f"report MEASUREMENT {report.measurement.hex()} != predicted {predicted.digest.hex()} for {img.path}"
    finally:
        vm.shutdown()


def test_capabilities_recorded(host_caps: Capabilities, artifacts: ArtifactDir) -> None:
    """The capability probe ran for this host: every capability has a value and source, or says why it is
    absent (the evidence every NOT-APPLICABLE above cites)."""
    artifacts.write_json("capabilities.json", host_caps.to_json())
    bad = [c.id for c in host_caps if not c.source or (not c.present and not c.absent)]
    assert not bad, f"capabilities without source or reason: {bad}"
    unreadable = [f"{c.id}: {c.absent}" for c in host_caps if c.unreadable]
    if unreadable:
        raise SevkitError("capabilities could not be read: " + "; ".join(unreadable))
    odd = [i for i in host_caps.ids() if not re.fullmatch(r"[a-z_]+\.[a-z0-9_.-]+", i)]
    assert not odd, f"capability ids not of the form area.name: {odd}"
    missing = sorted(ISSUE_13_CAPABILITIES - set(host_caps.ids()))
    assert not missing, f"the probe lists no entry (value or reason) for {missing}"
