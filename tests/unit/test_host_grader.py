"""The pure grader: RawInputs -> HostReport, on real captures where they exist.

Real captures come from tests/data/realdata (PROVENANCE.md states the conclusion asserted here).
Values a capture does not contain are synthetic filler from hostraw.make_raw, named as such.
"""

from __future__ import annotations

import pytest
from helpers.hostraw import (
    GENOA,
    MILAN,
    ROME,
    TURIN,
    access_denied,
    cpuid_from_capture,
    make_raw,
    realdata,
    sev_status_hex,
    snp_status_hex,
    tcb,
)

from sevkit.host import FEATURES, grade
from sevkit.host.cpu import Signature, generation, sev_firmware_file, signature
from sevkit.tcb import TcbVersion, layout_for_family

SNPHOST_TREE = {  # snphost ok test name -> our check id (sev-facts §9.1)
    "AMD CPU": "cpu.vendor", "Microcode support": "cpu.epyc", "Secure Memory Encryption (SME)": "cpuid.sme",
    "SME": "msr.syscfg.smee", "Secure Encrypted Virtualization (SEV)": "cpuid.sev",
    "SEV Firmware Version": "sev.platform_status", "Encrypted State (SEV-ES)": "cpuid.sev_es",
    "SEV-ES initialized": "sev_es.initialized", "SEV initialized": "sev.initialized",
    "Secure Nested Paging (SEV-SNP)": "cpuid.sev_snp", "VM Permission Levels": "cpuid.vmpl",
    "Number of VMPLs": "cpuid.num_vmpl", "SEV-SNP": "msr.syscfg.snpen", "SNP initialized": "snp.initialized",
    "Read RMP tables": "msr.rmp", "RMP table initialized": "snp.rmp_initialized", "Alias check": "snp.alias_check",
    "Physical address bit reduction": "cpuid.phys_addr_reduction", "C-bit location": "cpuid.cbit",
    "Number of encrypted guests supported simultaneously": "cpuid.max_guests",
    "Minimum ASID value for SEV-enabled, SEV-ES disabled guest": "cpuid.min_sev_asid",
    "/dev/sev readable": "sev.dev_readable", "/dev/sev writable": "sev.dev_writable",
    "Page flush MSR": "cpuid.page_flush", "KVM Support": "kvm.dev", "SEV enabled in KVM": "kvm.param.sev",
    "SEV-ES enabled in KVM": "kvm.param.sev_es", "SEV-SNP enabled in KVM": "kvm.param.sev_snp",
    "memlock limit": "host.memlock", "Compare TCB values": "snp.tcb",
}


def test_every_snphost_check_has_a_counterpart() -> None:
    ids = set(grade(make_raw()).ids())
    assert set(SNPHOST_TREE.values()) <= ids


def test_hb_os_genoa_all_pass_like_snphost() -> None:
    """hb-os Genoa R6615: snphost ok all PASS. Real: dmesg, kvm_amd params, and the CPUID/TCB values
    snphost printed (C-bit 51, reduction 6, 1006 guests, min ASID 100, 4 VMPLs, page flush DISABLED,
    TCB uc72/SNP22/TEE0/BL9 both). Registers are rebuilt from those values; RMP from snphost's line."""
    ok = realdata("snphost-ok/hb-os_genoa-dell-r6615_snphost-ok_all-pass_tcb-match.txt")
    assert "Physical address bit reduction: 6" in ok and "1006" in ok and "0x601d200000 - 0x607dafffff" in ok
    params = realdata("other/hb-os_genoa-dell-r6615_kvm_amd-params_sev-sev_es-sev_snp_output.txt").splitlines()
    dmesg = realdata("dmesg-host/hb-os_genoa-dell-r6615_6.9.0-rc7-snp-host_snp-fully-enabled.txt")
    eax = 0b111011  # SME, SEV, -, SEV-ES, SNP, VMPL (page flush DISABLED in the capture)
    raw = make_raw(leaf_1f=(eax, 51 | 6 << 6 | 4 << 12, 1006, 100), rmp=(0x601D200000, 0x607DAFFFFF),
                   kvm_params={"sev": params[0], "sev_es": params[1], "sev_snp": params[2]}, dmesg=dmesg,
                   kernel="6.9.0-rc7-snp-host-05b10142ac6a",
                   snp_status=snp_status_hex(1, 55, 1, True, True, 38, 0, tcb(9, 0, 22, 72), tcb(9, 0, 22, 72)))
    r = grade(raw)
    for name, cid in SNPHOST_TREE.items():
        assert r.check(cid).status == "pass", (name, r.check(cid))
    assert r.features == {"SME": True, "SEV": True, "SEV-ES": True, "SEV-SNP": True}
    assert (r.cbitpos, r.reduced_phys_bits) == (51, 6)
    assert r.check("cpuid.page_flush").message.endswith("(DISABLED; informational)")
    assert r.check("dmesg.kvm_asids").status == "pass"      # SEV 100-1006, ES/SNP 1-99 vs CPUID
    assert r.check("dmesg.rmp").status == "pass" and r.check("dmesg.iommu_snp").status == "pass"
    assert r.check("dmesg.firmware_api").status == "pass"
    assert "SNP 22 UCODE 72" in r.check("snp.tcb").message
    assert r.verdict("sev-snp").holds
    assert r.why_not("SEV-SNP") == ""


def test_amdsev197_milan_real_cpuid_and_unreadable_msrs() -> None:
    """AMDSEV#197 Milan 7313: real `cpuid -1 -r` registers and the real dmesg of the same machine
    (RMP not reserved by BIOS). MSRs were not captured: they are an access error, never 'off'."""
    regs = cpuid_from_capture(realdata("cpuid/amdsev-197_milan-7313_hpe-dl385-gen10plus-v2_cpuid-1-r-l-0x8000001f.txt"),
                              0x8000001F)
    dmesg = realdata("dmesg-host/amdsev-197_milan-7313-hpe-dl385_6.6.0-rc1_rmp-not-reserved-by-bios.txt")
    r = grade(make_raw(eax1=MILAN, brand="AMD EPYC 7313 16-Core Processor", leaf_1f=regs, dmesg=dmesg,
                       kernel="6.6.0-rc1+", msr_error=access_denied()))
    assert r.check("cpu.generation").message.startswith("Milan")
    for cid in ("cpuid.sme", "cpuid.sev", "cpuid.sev_es", "cpuid.sev_snp", "cpuid.vmpl"):
        assert r.check(cid).status == "pass", cid
    assert r.check("cpuid.cbit").message == "C-bit position 51"
    assert r.check("cpuid.phys_addr_reduction").message == "4 bits"
    assert r.check("cpuid.num_vmpl").message == "4 VMPLs"
    assert r.check("cpuid.max_guests").message.startswith("253 ")
    assert "14 SEV-ES/SNP ASIDs (1-14)" in r.check("cpuid.min_sev_asid").message
    assert r.check("msr.syscfg.smee").status == "error"
    assert "modprobe msr" in (r.check("msr.syscfg.smee").hint or "")
    assert r.features["SEV"] is None and r.features["SEV-SNP"] is None   # unknown, not False
    assert r.check("dmesg.rmp").status == "fail"
    assert "SNP Memory Coverage" in (r.check("dmesg.rmp").hint or "")
    assert r.verdict("sev").errors  # an access error: the CLI exits 2


def test_amdsev84_dell_min_asid_1_leaves_no_sev_es_asids() -> None:
    """AMDSEV#84 Dell R7515: real dmesg ('SEV supported: 509 ASIDs') and real params Y/N/N; PROVENANCE:
    BIOS min SEV ASID = 1, so CPUID EDX = 1 and ECX = 509 (registers rebuilt from those facts)."""
    text = realdata("dmesg-host/amdsev-84_dell-r7515_5.14.0-rc2-snp-host_snp-api-1.51_sev-509_params-Y-N-N.txt")
    params = [ln.strip() for ln in text.splitlines() if ln.strip() in ("Y", "N")]
    assert params == ["Y", "N", "N"]
    r = grade(make_raw(eax1=MILAN, leaf_1f=(0x0101FD3F, 0x4133, 509, 1), dmesg=text, kernel="5.14.0-rc2-snp-host",
                       kvm_params={"sev": "Y", "sev_es": "N", "sev_snp": "N"},
                       sev_status=sev_status_hex(1, 51, 1, 0, 3, 0)))
    mina = r.check("cpuid.min_sev_asid")
    assert mina.status == "fail" and "SEV-ES ASID Space Limit" in (mina.hint or "")
    assert r.check("kvm.param.sev_es").status == "fail"
    assert r.check("kvm.param.sev_es").message == "kvm_amd parameter sev_es is N"
    assert r.features["SEV"] is True and r.features["SEV-ES"] is False and r.features["SEV-SNP"] is False
    assert "no ASIDs left for SEV-ES" in r.why_not("SEV-ES")
    assert r.check("dmesg.kvm_asids").status == "pass"   # 509 SEV ASIDs == CPUID budget 509-1+1
    assert r.verdict("sev").holds and not r.verdict("sev-es").holds


@pytest.mark.parametrize("capture", [
    "dmesg-host/sevtool-43_milan-7313_ubuntu20.04-5.8.0-43_init-fail-0x13.txt",
    "dmesg-host/sevtool-65_milan-7313_5.4.0-117_sev-init-fail-0x13.txt",
    "dmesg-host/enarx-1315_snp-api-1.42-build-42_sev-init-fail-0x13.txt",
])
def test_init_failure_0x13_points_at_smee(capture: str) -> None:
    """Real logs with 'SEV: failed to INIT error 0x13' (HWSEV_RET_PLATFORM): the hint names SMEE.
    The UNINIT platform status is synthetic (what such a host reports)."""
    r = grade(make_raw(eax1=MILAN, dmesg=realdata(capture), sev_status=sev_status_hex(1, 28, 0, 0, 28, 0)))
    c = r.check("dmesg.psp_errors")
    assert c.status == "fail" and "0x13" in c.message and "SMEE" in (c.hint or "")
    assert r.check("sev.initialized").status == "fail"
    assert r.features["SEV"] is False
    assert "UNINIT" in r.why_not("SEV")


def test_amdsev81_old_firmware_fails_snp_minimum_with_firmware_file() -> None:
    """AMDSEV#81: real dmesg, SEV API 0.31 build 43 ('SNP requires firmware >= 1:51'). The platform status
    carries the same version (synthetic encoding); the hint names the fam19h model0x firmware file."""
    text = realdata("dmesg-host/amdsev-81_5.14.0-rc2-snp-host_api-0.31-build-43_snp-requires-1.51_init-fail-0x1.txt")
    r = grade(make_raw(eax1=MILAN, dmesg=text, kernel="5.14.0-rc2-snp-host",
                       sev_status=sev_status_hex(0, 31, 0, 0, 43, 0),
                       snp_status={"error": "OSError: [Errno 22] Invalid argument", "errno": 22, "fw_error": 0}))
    c = r.check("snp.firmware_min")
    assert c.status == "fail" and "0.31 < 1.51" in c.message
    assert "amd/amd_sev_fam19h_model0xh.sbin" in (c.hint or "")
    assert r.check("snp.initialized").status == "fail"
    assert r.check("snp.tcb").status == "skip" and r.check("snp.tcb").cause == "snp.initialized"
    assert r.features["SEV-SNP"] is False


def test_rome_sevctl93_snp_absent_children_skip_with_cpuid_evidence() -> None:
    """enarx sevctl#93 Rome: SEV & SEV-ES pass, SNP fails (expected on Rome), VMPL skipped; C-bit 47,
    509 guests, min ASID 10 (values from the capture; sevctl's 'reduction 47' is its known bug)."""
    ok = realdata("snphost-ok/enarx-sevctl-93_rome_sevctl-ok_snp-fail-expected.txt")
    assert "C-bit location: 47" in ok and "Minimum ASID value for SEV-enabled, SEV-ES disabled guest: 10" in ok
    r = grade(make_raw(eax1=ROME, brand="AMD EPYC 7402P 24-Core Processor", leaf_1f=(0b1111, 47 | 5 << 6, 509, 10),
                       syscfg=1 << 23, kvm_params={"sev": "Y", "sev_es": "Y"}, snp_status={"error": "EINVAL"},
                       kernel="5.15.0"))
    assert r.check("cpu.generation").message.startswith("Rome")
    assert r.check("cpuid.sev_snp").message == "CPUID Fn8000_001F EAX bit 4 (SEV-SNP) is 0"
    for cid in ("cpuid.vmpl", "cpuid.num_vmpl", "msr.syscfg.snpen", "snp.initialized", "iommu.enabled"):
        c = r.check(cid)
        assert c.status == "skip" and c.message.startswith("CPUID Fn8000_001F EAX bit 4 (SEV-SNP) is 0"), cid
    assert r.features == {"SME": True, "SEV": True, "SEV-ES": True, "SEV-SNP": False}
    assert r.verdict("sev-es").holds and not r.verdict("sev-snp").holds
    # The one verdict per check (HostReport.judge): the root fails only when the profile needs SNP.
    assert [r.judge("cpuid.sev_snp", p).outcome for p in ("none", "sev", "sev-es", "sev-snp")] == \
        ["not-expected", "not-expected", "not-expected", "fail"]
    assert r.judge("cpuid.vmpl", "sev-snp").outcome == "skip" and r.judge("cpuid.sev", "none").outcome == "pass"


def test_sevctl186_inside_azure_guest_is_not_a_host() -> None:
    """virtee/sevctl#186: sevctl ok inside an SNP guest: SEV FAIL, /dev/kvm missing. The guest sees no
    SEV CPUID bits (sevctl: SME/SEV FAIL), no /dev/kvm, no /dev/sev: every feature is False, not None."""
    ok = realdata("snphost-ok/sevctl-186_azure-dcadsv5-guest_sevctl-ok_not-a-host.txt")
    assert "Error reading /dev/kvm" in ok
    r = grade(make_raw(eax1=MILAN, brand="AMD EPYC 7763v 64-Core Processor", leaf_1f=(0, 0, 0, 0), kvm=False,
                       dev_sev=False, kvm_module=False, syscfg=0, kernel="6.2.0-1019-azure"))
    assert r.check("kvm.dev").status == "fail"
    assert r.check("cpuid.sev").status == "fail"
    assert r.features == dict.fromkeys(FEATURES, False)
    assert r.verdict("none").holds and not r.verdict("sev").holds
    assert "/dev/kvm does not exist" in r.why_not("SEV") or "bit 1 (SEV) is 0" in r.why_not("SEV")


def test_snphost127_tcb_mismatch_fails_with_commit_hint() -> None:
    """virtee/snphost#127: platform TCB SNP 24 vs reported SNP 23 (uc213, TEE0, BL2) and a failed alias check."""
    ok = realdata("snphost-ok/snphost-127_snphost-0.6.1_ok-partial_alias-check-fail_tcb-mismatch.txt")
    assert "The TCB versions did NOT match" in ok
    r = grade(make_raw(eax1=MILAN, snp_status=snp_status_hex(1, 55, 1, True, False, 29, 0,
                                                               tcb(2, 0, 24, 213), tcb(2, 0, 23, 213))))
    c = r.check("snp.tcb")
    assert c.status == "fail" and "SNP 24" in c.message and "SNP 23" in c.message
    assert "commit" in (c.hint or "")
    assert r.check("snp.alias_check").status == "warn"
    assert r.features["SEV-SNP"] is True          # a TCB mismatch does not stop SNP guests...
    assert not r.verdict("sev-snp").holds         # ...but the sev-snp profile does not hold


def test_iommu_passthrough_blocks_snp() -> None:
    """SYNTHETIC: iommu=pt on the command line (AMDSEV#88)."""
    r = grade(make_raw(cmdline="BOOT_IMAGE=/vmlinuz iommu=pt"))
    assert r.check("iommu.not_passthrough").status == "fail"
    assert r.features["SEV-SNP"] is False and r.features["SEV-ES"] is True
    r = grade(make_raw(cmdline="ro amd_iommu=off", iommu_units=()))
    assert r.check("iommu.enabled").status == "fail" and "amd_iommu=off" in r.check("iommu.enabled").message


def test_no_cpuid_device_is_an_access_error_not_false() -> None:
    """SYNTHETIC: /dev/cpu/0/cpuid missing (cpuid module not loadable)."""
    r = grade(make_raw(cpuid_error={"error": "FileNotFoundError: no /dev/cpu/0/cpuid", "errno": 2}))
    assert r.check("cpu.vendor").status == "error"
    assert "modprobe cpuid" in (r.check("cpu.vendor").hint or "")
    assert all(v is None for v in r.features.values())
    assert r.verdict("none").errors and not r.verdict("none").holds   # access errors count under any profile
    assert r.verdict("sev").errors


def test_dev_sev_not_readable_as_user_is_access_error() -> None:
    r = grade(make_raw(sev_readable=access_denied(), euid=1000))
    assert r.check("sev.dev_readable").status == "error"
    assert r.features["SEV"] is None


def test_misc_cgroup_consistency() -> None:
    """SYNTHETIC: misc.capacity equal to the CPUID budget passes, a different one warns."""
    good = grade(make_raw(misc_capacity="sev 907\nsev_es 99\n")).check("asid.misc_cgroup")
    assert good.status == "pass"
    bad = grade(make_raw(misc_capacity="sev 509\nsev_es 99\n")).check("asid.misc_cgroup")
    assert bad.status == "warn" and "907" in bad.message
    assert grade(make_raw()).check("asid.misc_cgroup").status == "skip"


def test_qemu_and_ovmf_checks() -> None:
    r = grade(make_raw(qemu_version="7.2.22", qemu_objects=("sev-guest",), ovmf=("/usr/share/OVMF/OVMF.amdsev.fd",)))
    assert r.qemu is not None and r.qemu.version == (7, 2, 22) and "sev-guest" in r.qemu.objects
    assert r.check("qemu.sev_snp_guest").status == "fail" and "9.1" in (r.check("qemu.sev_snp_guest").hint or "")
    assert all(r.check(c).status == "pass" for c in ("ovmf.sev_es", "ovmf.snp", "ovmf.kernel_hashes"))
    r = grade(make_raw(qemu_version=None, ovmf=()))
    assert r.qemu is None and r.check("qemu.present").status == "fail" and r.check("ovmf.present").status == "fail"
    assert r.check("qemu.sev_guest").status == "skip" and r.check("ovmf.snp").status == "skip"


def test_every_non_pass_check_has_a_hint_and_evidence() -> None:
    for raw in (make_raw(), make_raw(eax1=ROME, leaf_1f=(0b1111, 47, 509, 10)), make_raw(vendor="GenuineIntel"),
                make_raw(cmdline="iommu=pt", kvm_params={"sev": "N"}, dev_sev=False)):
        for c in grade(raw).checks:
            assert c.status in ("pass", "fail", "warn", "skip", "error")
            if c.status != "pass":
                assert c.hint, c
            if c.status != "skip":
                assert c.evidence, c


def test_non_amd_cpu_fails_vendor_and_skips_the_rest() -> None:
    r = grade(make_raw(vendor="GenuineIntel", brand="Intel(R) Xeon(R) Processor", leaf_1f=(0, 0x70001, 0, 0)))
    assert r.check("cpu.vendor").message == "CPUID Fn0000_0000 vendor is GenuineIntel, not AuthenticAMD"
    assert r.check("cpuid.sev").status == "skip" and r.check("cpuid.sev").cause == "cpu.vendor"
    assert r.verdict("none").holds and not r.verdict("sev").holds
    assert "GenuineIntel" in r.why_not("SEV-SNP")


def test_cpu_decoding() -> None:
    assert generation(signature(MILAN)) == "Milan"
    assert generation(signature(ROME)) == "Rome"
    assert generation(signature(TURIN)) == "Turin"
    assert generation(signature(0x00AA0F01)) == "Bergamo/Siena"   # family 19h model A0h
    assert generation(signature(0x00800F12)) == "Naples"
    assert sev_firmware_file(Signature(0x19, 0x11, 1)) == "amd/amd_sev_fam19h_model1xh.sbin"
    assert TcbVersion.from_int(tcb(4, 0, 24, 219), "legacy").text(" ") == "BL 4 TEE 0 SNP 24 UCODE 219"
    assert TcbVersion.from_int(int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 9]), "little"), "turin").text(" ") == \
        "FMC 1 BL 2 TEE 3 SNP 4 UCODE 9"
    assert layout_for_family(signature(TURIN).family) == "turin"
    assert layout_for_family(signature(MILAN).family) == layout_for_family(signature(GENOA).family) == "legacy"


def test_report_json_shape() -> None:
    out = grade(make_raw()).to_json()
    assert set(out["features"]) == set(FEATURES)
    assert all({"id", "status", "evidence"} <= set(c) for c in out["checks"])
    assert all("hint" in c for c in out["checks"] if c["status"] != "pass")


def test_secure_tsc_optional_feature() -> None:
    """SYNTHETIC: Secure TSC needs CPUID EAX bit 8 and KVM's VMSA feature bit 9 (snphost -f)."""
    with_bit8 = (0x0101FD3F | 1 << 8, 51 | 6 << 6 | 4 << 12, 1006, 100)
    assert grade(make_raw(leaf_1f=with_bit8, vmsa_features=1 << 9)).check("kvm.secure_tsc").status == "pass"
    assert grade(make_raw(leaf_1f=with_bit8)).check("kvm.secure_tsc").status == "warn"
    no_bit8 = (0x0101FC3F, 51 | 6 << 6 | 4 << 12, 1006, 100)
    c = grade(make_raw(leaf_1f=no_bit8)).check("kvm.secure_tsc")
    assert c.status == "skip" and "bit 8 (SecureTsc) is 0" in c.message
