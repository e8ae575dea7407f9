"""Applicability rules of the issue-13 requirements: every rule on both sides, and ERROR when it cannot tell.

Capability inputs are SYNTHETIC (helpers/capsraw.py) unless a test names its real capture.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable

import pytest
from helpers.capsraw import VM_DEFAULT, VM_SEV, VM_SEV_ES, VM_SNP, err, qmp, snp_status_hex, with_caps
from helpers.hostraw import make_raw, realdata

from sevkit.errors import HostProbeError
from sevkit.host import applicability as ap
from sevkit.host.capabilities import Capabilities, read

ALL_PROPS = ("type", "policy", "kernel-hashes", "id-block", "id-auth", "author-key-enabled", "host-data",
             "secure-tsc")


def caps(**kw: object) -> Capabilities:
    return read(with_caps(**kw))  # type: ignore[arg-type]


def no_snp() -> Capabilities:
    return caps(vm_types=VM_DEFAULT | VM_SEV | VM_SEV_ES)


def old_qemu() -> Capabilities:
    return caps(qemu=qmp(snp_props=None, igvm=False))


@pytest.mark.parametrize("rule", [
    lambda c: ap.policy_bit(c, 23), lambda c: ap.policy_bit_refused(c, 25), ap.ciphertext_hiding, ap.host_data,
    ap.id_block, ap.secure_tsc, ap.debug_swap, ap.vmsa_features, ap.mitigation_vectors, ap.igvm,
], ids=["policy", "policy-refused", "cth", "host-data", "id-block", "secure-tsc", "debug-swap", "vmsa", "mitigations",
        "igvm"])
def test_every_snp_rule_is_not_applicable_without_snp_or_sev_snp_guest(
        rule: Callable[[Capabilities], ap.Applicability]) -> None:
    for c, why in ((no_snp(), "KVM does not offer the SEV-SNP VM type"), (old_qemu(), "no sev-snp-guest object")):
        a = rule(c)
        assert not a.applicable and why in a.reason
        assert a.skip_reason.startswith("NOT-APPLICABLE: ") and "kvm.vm_types=" in a.skip_reason


def test_policy_bit_advertised_and_not() -> None:
    c = caps(policy_bits=0x3F0000 | 1 << 23)
    assert ap.policy_bit(c, 23).applicable
    assert not ap.policy_bit_refused(c, 23).applicable
    no = ap.policy_bit(c, 25)
    assert not no.applicable and "bit 25 (PAGE_SWAP_DISABLE)" in no.reason
    assert ap.policy_bit_refused(c, 25).applicable


def test_policy_bits_attribute_missing_means_not_advertised_and_nothing_to_refuse() -> None:
    c = caps(policy_bits=err(errno.ENXIO))
    assert not ap.policy_bit(c, 16).applicable and "KVM_X86_SNP_POLICY_BITS" in ap.policy_bit(c, 16).reason
    assert not ap.policy_bit_refused(c, 25).applicable


def test_ciphertext_hiding_needs_kvm_asids_firmware_enable_and_policy_bit() -> None:
    on = dict(params={"sev_snp": "Y", "ciphertext_hiding_asids": "100"}, snp_flags=1 << 5 | 1 << 6,
              policy_bits=0x1F0000 | 1 << 24)
    assert ap.ciphertext_hiding(caps(**on)).applicable
    for unset in ("0", ""):          # the kernel prints an unset string parameter as an empty line
        off = ap.ciphertext_hiding(caps(**{**on, "params": {"sev_snp": "Y", "ciphertext_hiding_asids": unset}}))
        assert not off.applicable and "ciphertext_hiding_asids" in off.reason
    every = ap.ciphertext_hiding(caps(**{**on, "params": {"sev_snp": "Y", "ciphertext_hiding_asids": "max"}}))
    assert every.applicable and "all SEV-ES/SNP ASIDs ('max')" in every.reason
    bad = caps(**{**on, "params": {"sev_snp": "Y", "ciphertext_hiding_asids": "lots"}})
    assert "unexpected value 'lots'" in str(bad.get("kvm_amd.ciphertext_hiding_asids").absent)
    fw = ap.ciphertext_hiding(caps(**{**on, "snp_flags": 1 << 5}))
    assert not fw.applicable and "SNP_PLATFORM_STATUS" in fw.reason
    pol = ap.ciphertext_hiding(caps(**{**on, "policy_bits": 0x1F0000}))
    assert not pol.applicable and "bit 24" in pol.reason


def test_id_block_and_host_data_follow_qemu_properties() -> None:
    assert ap.id_block(caps()).applicable and ap.host_data(caps()).applicable
    c = caps(qemu=qmp(snp_props=("type", "policy", "host-data")))
    assert ap.host_data(c).applicable
    a = ap.id_block(c)
    assert not a.applicable and "lacks id-block, id-auth, author-key-enabled" in a.reason


def test_secure_tsc_needs_cpu_kvm_and_qemu() -> None:
    ok = dict(vmsa=0x200, qemu=qmp(snp_props=ALL_PROPS))
    # hostraw's synthetic Genoa leaf: EAX 0x0101FD3F has bit 8
    assert ap.secure_tsc(caps(**ok)).applicable
    assert "VMSA feature" in ap.secure_tsc(caps(**{**ok, "vmsa": 0x20})).reason
    assert "secure-tsc property" in ap.secure_tsc(caps(vmsa=0x200)).reason
    no_cpu = read(with_caps(make_raw(leaf_1f=(0x0101FC3F, 51 | 1 << 6, 1006, 100), vmsa_features=0x200), **ok))
    assert "CPUID Fn8000_001F EAX bit 8" in ap.secure_tsc(no_cpu).reason


def test_debug_swap_needs_kvm_and_qemu() -> None:
    ok = dict(vmsa=0x20, qemu=qmp(snp_props=(*ALL_PROPS, "debug-swap")))
    assert ap.debug_swap(caps(**ok)).applicable
    assert "DebugSwap VMSA feature (bit 5" in ap.debug_swap(caps(**{**ok, "vmsa": 0x200})).reason
    assert "no debug-swap property" in ap.debug_swap(caps(vmsa=0x20, qemu=qmp(snp_props=ALL_PROPS))).reason


def test_vmsa_features_rule() -> None:
    assert ap.vmsa_features(caps(vmsa=0x20)).applicable
    a = ap.vmsa_features(caps(vmsa=err(errno.ENXIO)))
    assert not a.applicable and "KVM_X86_SEV_VMSA_FEATURES" in a.reason


def test_mitigation_vectors_rule() -> None:
    assert ap.mitigation_vectors(caps(mitigations=("0x1\n", "0x1\n"))).applicable
    a = ap.mitigation_vectors(caps())
    assert not a.applicable and "/sys/firmware/sev does not exist" in a.reason


def test_igvm_rule() -> None:
    assert ap.igvm(caps()).applicable
    a = ap.igvm(caps(qemu=qmp(igvm=False)))
    assert not a.applicable and "igvm-cfg' not found" in a.reason


def test_snp_config_only_with_allow_destructive() -> None:
    held = ap.snp_config(caps(), allow_destructive=False)
    assert not held.applicable and held.withheld and "--sev-allow-destructive" in held.reason
    # an SNP host that was not permitted: a plain SKIP naming the option and the firmware, never NOT-APPLICABLE
    assert held.skip_reason.startswith("not run: SNP_CONFIG changes") and "firmware.snp_status=" in held.skip_reason
    no_snp = ap.snp_config(caps(vm_types=VM_DEFAULT | VM_SEV), allow_destructive=False)
    assert not no_snp.withheld and no_snp.skip_reason.startswith("NOT-APPLICABLE: KVM does not offer the SEV-SNP")
    assert ap.snp_config(caps(), allow_destructive=True).applicable
    a = ap.snp_config(read(with_caps(make_raw(dev_sev=False))), allow_destructive=True)
    assert not a.applicable and "/dev/sev does not exist" in a.reason


def test_sev_es_withdrawn_by_firmware_is_not_applicable_with_the_firmware_version() -> None:
    """The firmware version is the REAL one from AMDESE/AMDSEV#282's host log (tests/data/realdata/dmesg-host:
    'SEV API:1.55 build:31', 'SEV-SNP API:1.55 build:31'); the VM-type mask is SYNTHETIC (that report
    predates KVM's VM-type export)."""
    log = realdata("dmesg-host/amdsev-282_milan_pci-43.00.1_sev-api-1.55-build-31.txt")
    assert "SEV-SNP API:1.55 build:31" in log
    raw = with_caps(vm_types=VM_DEFAULT | VM_SEV | VM_SNP)
    raw.data["ioctl"]["SNP_PLATFORM_STATUS"] = {"hex": snp_status_hex(api=(1, 55), build=31), "fw_error": 0}
    c = read(raw)
    a = ap.sev_es_offered(c)
    assert not a.applicable
    assert "SEV-ES withdrawn: KVM offers default, sev, sev-snp but not SEV-ES, and no host setting" in a.reason
    assert "SEV-SNP API 1.55 build 31" in a.reason
    note = ap.profile_note(c, "sev-es")
    assert note and note.startswith("profile sev-es demands SEV-ES guests, which this host cannot deliver")
    assert ap.profile_note(c, "sev-snp") is None          # SNP guests still run: not a failure of sev-snp
    assert ap.profile_note(c, "sev") is None
    assert ap.sev_es_offered(caps()).applicable and ap.profile_note(caps(), "sev-es") is None


@pytest.mark.parametrize(("over", "cause"), [
    ({"params": {"sev": "Y", "sev_es": "Y", "sev_snp": "Y", "ciphertext_hiding_asids": "max"}},
     "ciphertext_hiding_asids=max"),
    ({"params": {"sev": "Y", "sev_es": "N", "sev_snp": "Y"}, "vm_types": VM_DEFAULT | VM_SEV | VM_SNP},
     "kvm_amd reports sev_es=N"),
])
def test_sev_es_taken_by_a_host_setting_names_the_setting_not_the_firmware(over: dict[str, object],
                                                                        cause: str) -> None:
    """SYNTHETIC settings. With ciphertext_hiding_asids=max some kernels still list the SEV-ES VM type (the launch
    then fails with ENOTTY), so the setting itself is the evidence."""
    a = ap.sev_es_offered(caps(**over))
    assert not a.applicable and cause in a.reason and "firmware" not in a.reason.split(":", 1)[1].split("(")[0]
    assert ap.profile_note(caps(**over), "sev-es")


def test_no_sev_es_asids_from_the_bios_is_the_cause() -> None:
    """SYNTHETIC CPUID Fn8000_001F: EDX (minimum SEV ASID) 1 leaves no SEV-ES/SNP ASIDs."""
    raw = with_caps(make_raw(leaf_1f=(0x0101FD3F, 51 | 6 << 6 | 4 << 12, 1006, 1)), vm_types=VM_DEFAULT | VM_SEV)
    a = ap.sev_es_offered(read(raw))
    assert not a.applicable and "no ASIDs for SEV-ES/SNP" in a.reason


def test_sev_es_on_a_kernel_without_vm_types_is_decided_by_the_launch() -> None:
    a = ap.sev_es_offered(caps(vm_types=0))
    assert a.applicable and "kernel before 6.8" in a.reason


def test_qemu_launch_start_refusal_text_from_amdsev_282() -> None:
    """The text quoted in AMDESE/AMDSEV#282's description (no capture file holds it)."""
    text = ("qemu-system-x86_64: -accel kvm: sev_launch_start: LAUNCH_START ret=1 fw_error=21 "
            "'Feature not supported'")
    assert ap.launch_refusal_withdraws_sev_es(text)
    assert not ap.launch_refusal_withdraws_sev_es(text.replace("fw_error=21", "fw_error=3"))
    assert not ap.launch_refusal_withdraws_sev_es("qemu-system-x86_64: failed to initialize kvm")


def test_unreadable_capability_is_an_error_not_not_applicable() -> None:
    with pytest.raises(HostProbeError, match="cannot tell whether it applies"):
        ap.host_data(read(make_raw()))            # bundle without the capabilities section
    with pytest.raises(HostProbeError, match=r"kvm\.vm_types not readable"):
        ap.sev_es_offered(caps(vm_types=err(errno.EACCES)))


@pytest.mark.parametrize(("pattern", "text", "matches"), [
    # SYNTHETIC lines in QEMU's own format strings (target/i386/sev.c), with SEV firmware status codes
    (ap.ID_BLOCK_REFUSED, "qemu-system-x86_64: SNP_LAUNCH_FINISH ret=-5 fw_error=10 'Bad signature'", True),
    (ap.ID_BLOCK_REFUSED, "qemu-system-x86_64: SNP_LAUNCH_FINISH ret=-5 fw_error=11 'Bad measurement'", True),
    (ap.POLICY_REFUSED, "qemu-system-x86_64: sev_snp_launch_start: SNP_LAUNCH_START ret=-22 fw_error=0 "
                        "'No error'", True),
    (ap.POLICY_REFUSED, "qemu-system-x86_64: sev_snp_launch_start: SNP_LAUNCH_START ret=-5 fw_error=7 "
                        "'Platform policy failure'", True),
    (ap.ID_BLOCK_REFUSED, "qemu-system-x86_64: failed to initialize kvm: No such file or directory", False),
    (ap.POLICY_REFUSED, "qemu-system-x86_64: -drive file=/x.qcow2: Could not open '/x.qcow2'", False),
], ids=["bad-signature", "bad-measurement", "kvm-einval", "policy-failure", "no-kvm", "no-disk"])
def test_launch_refusal_patterns_match_qemus_messages_only(pattern: re.Pattern[str], text: str,
                                                          matches: bool) -> None:
    """A negative-launch test passes only on a refusal by KVM or the firmware, never on an unrelated failure."""
    assert bool(pattern.search(text)) is matches


def test_withdrawn_sev_es_carries_the_mitigation_vectors_uninterpreted() -> None:
    """SYNTHETIC vectors: they go along as evidence; no bit is read as 'the SEV-ES mitigation' (unsettled)."""
    a = ap.sev_es_offered(caps(vm_types=VM_DEFAULT | VM_SEV | VM_SNP, mitigations=("0x8\n", "0x8\n")))
    assert not a.applicable and "firmware.mitigations=" in a.skip_reason
    assert ap.sev_es_taken(caps(vm_types=VM_DEFAULT | VM_SEV | VM_SNP)) is not None
    assert ap.sev_es_taken(caps()) is None and ap.sev_es_taken(caps(vm_types=VM_DEFAULT)) is None
