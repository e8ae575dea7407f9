"""The grader against more real captures (tests/data/realdata; PROVENANCE.md states each conclusion).

Every host dmesg capture is graded as a live log would be; CPUID/TCB values printed by sevctl or
snphost are rebuilt into registers (the surrounding RawInputs are SYNTHETIC filler, see hostraw).
"""

from __future__ import annotations

import re

import pytest
from helpers.hostraw import MILAN, REALDATA, make_raw, realdata, sev_status_hex, snp_status_hex, tcb

from sevkit.host import grade
from sevkit.logs.dmesg import parse_host_dmesg

HOST_DMESG = sorted(p.name for p in (REALDATA / "dmesg-host").glob("*.txt"))
NAPLES = 0x00800F12   # family 17h model 01h


def test_realdata_present() -> None:
    assert len(HOST_DMESG) >= 20, f"tests/data/realdata/dmesg-host missing or incomplete at {REALDATA}"


@pytest.mark.parametrize("name", HOST_DMESG)
def test_every_host_dmesg_capture_grades_consistently(name: str) -> None:
    text = realdata(f"dmesg-host/{name}")
    facts = parse_host_dmesg(text)
    api = str(facts.firmware.get("sev_api") or facts.firmware.get("snp_api") or "1.55").split(".")
    status = sev_status_hex(int(api[0]), int(api[1]), 1, 0x100, 1, 0)   # synthetic: what the log says
    r = grade(make_raw(eax1=MILAN, dmesg=text, sev_status=status))
    psp = r.check("dmesg.psp_errors")
    assert (psp.status == "fail") == bool(facts.errors), psp
    for err in facts.errors:
        assert err in psp.message or len(facts.errors) > 4
    assert (r.check("dmesg.rmp").status == "pass") == (facts.rmp_range is not None)
    iommu = r.check("dmesg.iommu_snp").status
    assert iommu == {True: "pass", False: "fail", None: "warn"}[facts.iommu_snp]
    fw = r.check("dmesg.firmware_api")
    assert fw.status in ("pass", "warn") and (fw.status == "warn") == (not facts.firmware)
    for c in r.checks:
        if c.status != "pass":
            assert c.hint, c


def test_ryzen_flags_are_not_an_sev_host() -> None:
    """AMDSEV#1: a Ryzen 7 PRO 3700U shows sme/sev/sev_es flags, but SEV needs EPYC PSP firmware.
    The flags line is the real capture; CPUID bits mirror those flags (synthetic)."""
    line = realdata("cpuinfo/amdsev-1_ryzen-pro-3700u-laptop_flags-sme-sev-sev_es_NOT-EPYC.txt")
    flags = re.search(r"flags\s*:\s*(.*)", line)
    assert flags and {"sme", "sev", "sev_es"} <= set(flags.group(1).split())
    r = grade(make_raw(brand="AMD Ryzen 7 PRO 3700U w/ Radeon Vega Mobile Gfx", eax1=0x00810F81,
                       leaf_1f=(0b1011, 43 | 5 << 6, 16, 1), cpuinfo_flags=flags.group(1)))
    assert r.check("cpu.epyc").status == "fail"
    assert r.features["SEV"] is False and r.features["SME"] is True
    assert "does not name an EPYC processor" in r.why_not("SEV")


def test_hb_os_cpuinfo_flags_agree_with_cpuid() -> None:
    """hb-os Genoa host flags end 'sme sev sev_es sev_snp' (real); CPUID has all four bits."""
    text = realdata("cpuinfo/hb-os_genoa-dell-r6615_host_flags.txt")
    flags = re.search(r"flags\s*:\s*(.*)", text)
    assert flags
    r = grade(make_raw(cpuinfo_flags=flags.group(1)))
    assert r.check("cpu.cpuinfo_flags").status == "pass"
    cleared = grade(make_raw(cpuinfo_flags=flags.group(1).replace(" sev_snp", "")))
    assert cleared.check("cpu.cpuinfo_flags").status == "warn"


def test_amdsev271_milan_hpe_sevctl_values() -> None:
    """AMDSEV#271 HPE DL325 Gen10 v2 (Milan): sevctl ok all PASS; reduction 5, C-bit 51, 509 guests,
    min ASID 256, page flush ENABLED, SEV and SEV-ES enabled in KVM (values from the capture)."""
    ok = realdata("snphost-ok/amdsev-271_milan-hpe-dl325-gen10v2_bios-a43-v3.10_snp-enabled_sevctl-ok.txt")
    vals = {k: int(v) for k, v in re.findall(r"- ([^:\[]+): (\d+)$", ok, re.M)}
    cbit, red = vals["C-bit location"], vals["Physical address bit reduction"]
    guests = vals["Number of encrypted guests supported simultaneously"]
    min_asid = vals["Minimum ASID value for SEV-enabled, SEV-ES disabled guest"]
    eax = 0b111111  # SME, SEV, page flush (ENABLED), SEV-ES, SNP, VMPL: all PASS in the capture
    r = grade(make_raw(eax1=MILAN, leaf_1f=(eax, cbit | red << 6 | vals["Number of VMPLs"] << 12, guests, min_asid)))
    assert r.check("cpuid.cbit").message == "C-bit position 51"
    assert r.check("cpuid.phys_addr_reduction").message == "5 bits"
    assert "255 SEV-ES/SNP ASIDs (1-255), 254 SEV-only ASIDs" in r.check("cpuid.min_sev_asid").message
    assert "ENABLED" in r.check("cpuid.page_flush").message
    assert r.features["SEV-ES"] is True


def test_sevctl203_snowy_owl_sev_es_usable_where_sevctl_skipped() -> None:
    """virtee/sevctl#203 EPYC 3151: sevctl skipped SEV-ES (its model table bug) although kvm sev_es=Y and a
    SEV-ES guest ran there (dmesg-guest/sevctl-203). C-bit 47, reduction 5, 15 guests, min ASID 9."""
    ok = realdata("snphost-ok/sevctl-203_epyc3151-snowy-owl_sevctl-ok.txt")
    assert "[ SKIP ]     - Encrypted State (SEV-ES)" in ok and ok.rstrip().endswith("Y")
    guest = realdata("dmesg-guest/sevctl-203_epyc3151-host_sev-es-guest_policy-0x5.txt")
    assert "SEV SEV-ES" in guest
    r = grade(make_raw(eax1=NAPLES, brand="AMD EPYC 3151 4-Core Processor", leaf_1f=(0b1111, 47 | 5 << 6, 15, 9),
                       kvm_params={"sev": "Y", "sev_es": "Y"}, syscfg=1 << 23, snp_status={"error": "EINVAL"},
                       kernel="6.8.0"))
    assert r.check("cpu.generation").message.startswith("Naples")
    assert "8 SEV-ES/SNP ASIDs (1-8), 7 SEV-only ASIDs" in r.check("cpuid.min_sev_asid").message
    assert r.features == {"SME": True, "SEV": True, "SEV-ES": True, "SEV-SNP": False}


def test_snphost125_milan_tcb_uses_the_milan_layout() -> None:
    """virtee/snphost#125: snphost 0.6.0 decoded a Milan TCB with the Turin layout; 0.5.0 was right:
    uc219, SNP24, TEE0, BL4. sevkit picks the layout from the CPU family."""
    text = realdata("snphost-ok/snphost-125_milan-7313p_fw-1.55.29_tcb-output_v0.6.0-vs-v0.5.0.txt")
    assert "Microcode:   219" in text and "SNP:         24" in text
    value = tcb(4, 0, 24, 219)
    r = grade(make_raw(eax1=MILAN, snp_status=snp_status_hex(1, 55, 1, True, True, 29, 0, value, value)))
    assert "BL 4 TEE 0 SNP 24 UCODE 219" in r.check("snp.tcb").message
