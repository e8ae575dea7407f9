"""Every real capture in tests/data/realdata that `sevkit analyze` reads gives the conclusion that
PROVENANCE.md states for it.

The table below is derived from PROVENANCE.md's "expected conclusion" column and the file
text. Features are written as four letters for SME, SEV, SEV-ES, SEV-SNP: Y true, N false,
- null (the capture says nothing). Host dmesg: usable per the log (enabled in KVM AND
firmware initialized). Guest dmesg: active in the guest. cpuinfo: advertised flag. cpuid:
capability bit. kvm-amd-params: enabled in kvm_amd. snphost-ok: the tool's verdict
(PASS Y, FAIL N, SKIP -). A row with ``reject`` is a file analyze refuses (exit 2) on purpose.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sevkit.errors import InputError
from sevkit.logs.analyze import analyze_file
from sevkit.logs.dmesg import parse_host_dmesg

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO / "tests" / "data" / "realdata"
# The folders whose every file must have a row (new captures cannot go uncovered).
COVERED_GLOBS = ("dmesg-host/*", "dmesg-guest/*", "cpuid/*", "cpuinfo/*", "snphost-ok/*", "other/*.txt")

ANY = object()   # the row does not pin this field


@dataclass(frozen=True)
class Exp:
    kind: str = ""
    features: str = "----"
    firmware: dict[str, Any] = field(default_factory=dict)
    asid: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    vmpl: Any = ANY
    extra: dict[str, Any] = field(default_factory=dict)     # other JSON keys, compared exactly
    notes: tuple[str, ...] = ()                             # substrings that must appear in a note
    reject: str = ""                                        # analyze must refuse with this text


def fw(sev: tuple[str, int] | None = None, snp: tuple[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sev:
        out.update(sev_api=sev[0], sev_build=sev[1])
    if snp:
        out.update(snp_api=snp[0], snp_build=snp[1])
    return out


def asids(sev: int, es: int, snp: int) -> dict[str, int]:
    return {"SEV": sev, "SEV-ES": es, "SEV-SNP": snp}


H, G = "host-dmesg", "guest-dmesg"
FW_REQ = "SEV-SNP support requires firmware version >= 1:51"

EXPECTED: dict[str, Exp] = {
    # ---- dmesg-host -------------------------------------------------------------------------
    "dmesg-host/amdsev-105_asus-amd_sev-get-status-0x9000.txt": Exp(
        H, "-NNN", errors=("SEV: failed to get status. Error: 0x9000",)),
    "dmesg-host/amdsev-140_asrock-rome2d16-2t_milan_snp-requires-fw-1.51_api-1.49.txt": Exp(
        H, "-NNN", fw(("1.49", 3)), asids(410, 99, 99), (FW_REQ, "SEV INIT failed: error 0x1, rc -5")),
    "dmesg-host/amdsev-159_6.1.0-rc4-snp-host_snp-ok_params-Y.txt": Exp(
        H, "-YYY", fw(("1.52", 4), ("1.52", 4)), asids(254, 255, 255),
        extra={"kvm_params": {"SEV": True, "SEV-ES": True, "SEV-SNP": True}}),
    "dmesg-host/amdsev-164_6.1.0-rc4-snp-host_api-1.53-build-5_410-99_params-Y-Y-Y.txt": Exp(
        H, "-YYY", fw(("1.53", 5), ("1.53", 5)), asids(410, 99, 99),
        extra={"kvm_params": {"SEV": True, "SEV-ES": True, "SEV-SNP": True}}),
    "dmesg-host/amdsev-176_snp-init-fail-0x3_sev-init-fail-0x1_api-1.51-build-3.txt": Exp(
        H, "-NNN", fw(("1.51", 3)), asids(239, 14, 14),
        ("SEV-SNP INIT failed: error 0x3", "SEV INIT failed: error 0x1, rc -5")),
    # the trap: kvm_amd lists ASIDs, but the PSP is dead
    "dmesg-host/amdsev-184_pci-01.00.5_sev-cmd-0x85-timeout_snp-init-fail_api-1.55-build-21.txt": Exp(
        H, "-NNN", fw(("1.55", 21)), asids(907, 99, 99),
        ("sev command 0x85 timed out, disabling PSP", "SEV-SNP INIT failed: error 0x0",
         "SEV INIT failed: error 0xffffffff, rc -16"), notes=("PSP failed",),
        extra={"psp_device": "0000:01:00.5"}),
    # Hygon: SME active, "SEV supported" from kvm but no PSP firmware line -> SEV not reported usable
    "dmesg-host/amdsev-191_hygon-c86-7265_5.10.0-60.18_sev-supported_sme-active_NOT-AMD.txt": Exp(
        H, "Y-NN", notes=("usability unproven",)),
    "dmesg-host/amdsev-197_milan-7313-hpe-dl385_6.6.0-rc1_rmp-not-reserved-by-bios.txt": Exp(
        H, "---N", errors=("SEV-SNP: Memory for the RMP table has not been reserved by BIOS",)),
    "dmesg-host/amdsev-245_host_rmpupdate-failed.txt": Exp(
        H, "----", errors=("SEV-SNP: RMPUPDATE failed for PFN 56700, pg_level: 1, ret: 2",),
        notes=("RMP update failed",)),
    "dmesg-host/amdsev-258_milan_snp-api-1.51_sev-253-asids_no-kvm-snp.txt": Exp(
        H, "-YNN", fw(("1.51", 3), ("1.51", 3)), asids(253, 0, 0),
        extra={"rmp_range": ["0x7fef300000", "0x806fafffff"]}),
    "dmesg-host/amdsev-271-RARelph_milan-2x7453_6.11_snp-api-1.55-build-31_snp-ok.txt": Exp(
        H, "-YYY", fw(("1.55", 31), ("1.55", 31)), asids(255, 254, 254),
        extra={"asid_ranges": {"SEV": [255, 509], "SEV-ES": [1, 254], "SEV-SNP": [1, 254]}}),
    "dmesg-host/amdsev-282_milan_pci-43.00.1_sev-api-1.55-build-31.txt": Exp(
        H, "----", fw(("1.55", 31), ("1.55", 31)), notes=("no kvm_amd line",)),
    "dmesg-host/amdsev-81_5.14.0-rc2-snp-host_api-0.31-build-43_snp-requires-1.51_init-fail-0x1.txt": Exp(
        H, "-NNN", fw(("0.31", 43)), asids(154, 99, 99), (FW_REQ, "SEV INIT failed: error 0x1")),
    "dmesg-host/amdsev-84_dell-r7515_5.14.0-rc2-snp-host_snp-api-1.51_sev-509_params-Y-N-N.txt": Exp(
        H, "-YNN", fw(snp=("1.51", 3)), asids(509, 0, 0),
        extra={"kvm_params": {"SEV": True, "SEV-ES": False, "SEV-SNP": False}}),
    "dmesg-host/amdsev-97_milan_5.14.0-rc2-snp-host_snp-api-1.51.txt": Exp(
        H, "-YYY", fw(snp=("1.51", 3)), asids(410, 99, 99)),
    # segmented RMP (Turin): RMP_END = 0 is the layout, not "no RMP" (issue 9 §6)
    "dmesg-host/amdsev-readme_turin-segmented-rmp_snp-api-1.58_asids-1-98.txt": Exp(
        H, "-YYY", fw(snp=("1.58", 5)), {"SEV-SNP": 98},
        extra={"rmp_range": ["0x9ba00000", "0x9ba05000"], "asid_ranges": {"SEV-SNP": [1, 98]},
               "kvm_params": {"SEV": True, "SEV-ES": True, "SEV-SNP": True}}),
    "dmesg-host/coconut-svsm-409_host_pci-03.00.5_snp-api-1.55-build-24_snp-ok-1006.txt": Exp(
        H, "-YYY", fw(("1.55", 24), ("1.55", 24)), asids(907, 99, 99)),
    "dmesg-host/coconut-svsm-INSTALL.md_host_snp-api-1.51-build-3_382-127.txt": Exp(
        H, "-YYY", fw(("1.51", 3), ("1.51", 3)), asids(382, 127, 127)),
    "dmesg-host/enarx-1315_snp-api-1.42-build-42_sev-init-fail-0x13.txt": Exp(
        H, "-NNN", fw(snp=("1.42", 42)), asids(410, 99, 99), ("SEV INIT failed: error 0x13",),
        notes=("below the 1.51 minimum",)),
    "dmesg-host/hb-os_genoa-dell-r6615_6.9.0-rc7-snp-host_snp-fully-enabled.txt": Exp(
        H, "-YYY", fw(("1.55", 38), ("1.55", 38)), asids(907, 99, 99),
        extra={"rmp_range": ["0x601d200000", "0x607dafffff"], "iommu_snp": True,
               "asid_ranges": {"SEV": [100, 1006], "SEV-ES": [1, 99], "SEV-SNP": [1, 99]}}),
    "dmesg-host/linux-svsm-9_snp-requires-fw-1.51_sev-init-fail-0x1.txt": Exp(
        H, "-NNN", fw(("1.15", 15)), asids(410, 99, 99), (FW_REQ, "SEV INIT failed: error 0x1")),
    "dmesg-host/sevtool-43_milan-7313_ubuntu20.04-5.8.0-43_init-fail-0x13.txt": Exp(
        H, "-NN-", errors=("SEV INIT failed: error 0x13",)),
    "dmesg-host/sevtool-65_milan-7313_5.4.0-117_sev-init-fail-0x13.txt": Exp(
        H, "-NN-", errors=("SEV INIT failed: error 0x13",), notes=("CCP crypto queues unavailable",)),
    "dmesg-host/sevtool-6_naples_ubuntu18.04_sev-init-fail-0x8004.txt": Exp(
        H, "-NN-", errors=("SEV INIT failed: error 0x8004",), extra={"psp_device": "0000:06:00.2"}),
    # ---- dmesg-guest ------------------------------------------------------------------------
    "dmesg-guest/amdsev-198_snp-guest_sev-guest-driver-line.txt": Exp(
        G, "-YYY", vmpl=None, extra={"sev_guest_driver": True}),
    "dmesg-guest/amdsev-198_snp-guest_snp-latest-kernel_31-cpuid-entries_no-sev-guest-dev.txt": Exp(
        G, "NYYY", vmpl=None, extra={"snp_cpuid_entries": 31, "sev_guest_driver": None},
        notes=("/dev/sev-guest may be missing",)),
    # #VC only exists in SEV-ES/SNP guests; the lines alone do not say which of the two
    "dmesg-guest/amdsev-255_snp-guest_6.10.10_vc-unsupported-exit-0x404.txt": Exp(
        G, "-YY-", vmpl=None, errors=(
            "Wrong/unhandled opcode bytes: 0x8b, exit_code: 0x404, rIP: 0x577566600c3b",
            "SEV: Unsupported exit-code 0x404 in #VC exception (IP: 0x577566600c3b)")),
    "dmesg-guest/coconut-svsm-663_snp-guest-under-svsm_vmpl2.txt": Exp(G, "-YYY", vmpl=2),
    "dmesg-guest/os-autoinst-16048_sle15sp5-public-cloud_sev-guest.txt": Exp(G, "NYNN", vmpl=None),
    "dmesg-guest/sevctl-203_epyc3151-host_sev-es-guest_policy-0x5.txt": Exp(G, "NYYN", vmpl=None),
    # ---- cpuid ------------------------------------------------------------------------------
    "cpuid/amdsev-140_rome2d16-2t-milan_cpuid-grep-SEV_PARTIAL.txt": Exp(
        "cpuid", "-YY-", extra={"cpuid": {"c_bit": None, "phys_addr_reduction": None, "num_vmpls": None,
                                          "max_guests": 509, "min_sev_asid": None}}),
    "cpuid/amdsev-197_milan-7313_hpe-dl385-gen10plus-v2_cpuid-1-r-l-0x8000001f.txt": Exp(
        "cpuid", "YYYY", extra={"cpuid": {"c_bit": 51, "phys_addr_reduction": 4, "num_vmpls": 4,
                                          "max_guests": 253, "min_sev_asid": 15},
                                "registers": {"eax": "0x0101fd3f", "ebx": "0x00004133",
                                              "ecx": "0x000000fd", "edx": "0x0000000f"}},
        notes=("ASIDs 1-14 for SEV-ES/SNP",)),
    # ---- cpuinfo: flags advertised, which is not usability ----------------------------------
    "cpuinfo/amdsev-1_ryzen-pro-3700u-laptop_flags-sme-sev-sev_es_NOT-EPYC.txt": Exp(
        "cpuinfo", "YYYN", extra={"cpu": None, "is_epyc": None},
        notes=("cannot show this is an EPYC", "flags are not usability")),
    "cpuinfo/hb-os_genoa-dell-r6615_host_flags.txt": Exp("cpuinfo", "YYYY"),
    # ---- other ------------------------------------------------------------------------------
    "other/hb-os_genoa-dell-r6615_kvm_amd-params_sev-sev_es-sev_snp_output.txt": Exp(
        "kvm-amd-params", "-YYY", extra={"kvm_params": {"SEV": True, "SEV-ES": True, "SEV-SNP": True}}),
    # out of scope: a tool's own summary and a sevtool status dump are not captures analyze reads
    "other/sev_component_test-README_milan_5.19.0-rc6-snp-host_component-test-PASS.txt": Exp(
        reject="unknown kind"),
    "other/sevtool-65_milan-7313_sevtool-platform-status.txt": Exp(reject="unknown kind"),
    # ---- snphost-ok: sevctl/snphost ok reports and TCB listings -----------------------------
    "snphost-ok/amdsev-271_milan-hpe-dl325-gen10v2_bios-a43-v3.10_snp-enabled_sevctl-ok.txt": Exp(
        "snphost-ok", "YYYY", extra={"cpuid": {"c_bit": 51, "phys_addr_reduction": 5, "num_vmpls": 4,
                                               "max_guests": 509, "min_sev_asid": 256},
                                     "kvm": {"SEV": True, "SEV-ES": True}}),
    "snphost-ok/amdsev-282_milan_snpguest-tcb_before-fw-update.txt": Exp(
        "tcb", extra={"tcb": [
            {"owner": "reported", "microcode": 219, "snp": 25, "tee": 0, "bootloader": 4, "fmc": None},
            {"owner": "platform", "microcode": 219, "snp": 25, "tee": 0, "bootloader": 4, "fmc": None}]}),
    # Rome: SNP FAIL is expected; "reduction 47" is sevctl printing the C-bit
    "snphost-ok/enarx-sevctl-93_rome_sevctl-ok_snp-fail-expected.txt": Exp(
        "snphost-ok", "YYYN", errors=("FAIL Secure Nested Paging (SEV-SNP)",),
        extra={"cpuid": {"c_bit": 47, "phys_addr_reduction": None, "num_vmpls": None,
                         "max_guests": 509, "min_sev_asid": 10}},
        notes=("known sevctl mis-print",)),
    "snphost-ok/hb-os_genoa-dell-r6615_snphost-ok_all-pass_tcb-match.txt": Exp(
        "snphost-ok", "YYYY", firmware={"sev_api": "1.55"},
        extra={"cpuid": {"c_bit": 51, "phys_addr_reduction": 6, "num_vmpls": 4, "max_guests": 1006,
                         "min_sev_asid": 100},
               "rmp_range": ["0x601d200000", "0x607dafffff"],
               "kvm": {"SEV": True, "SEV-ES": True, "SEV-SNP": True},
               "tcb": [{"owner": "platform", "microcode": 72, "snp": 22, "tee": 0, "bootloader": 9,
                        "fmc": None},
                       {"owner": "reported", "microcode": 72, "snp": 22, "tee": 0, "bootloader": 9,
                        "fmc": None}]}),
    # taken inside an Azure SNP guest: must not read as a broken host
    "snphost-ok/sevctl-186_azure-dcadsv5-guest_sevctl-ok_not-a-host.txt": Exp(
        "snphost-ok", "----", errors=(
            "FAIL Microcode support", "FAIL Secure Memory Encryption (SME)",
            "FAIL Secure Encrypted Virtualization (SEV)",
            "FAIL KVM supported: Error reading /dev/kvm: (No such file or directory (os error 2))"),
        notes=("inside a guest",)),
    "snphost-ok/sevctl-203_epyc3151-snowy-owl_sevctl-ok.txt": Exp(
        "snphost-ok", "YY--", extra={"cpuid": {"c_bit": 47, "phys_addr_reduction": 5, "num_vmpls": None,
                                               "max_guests": 15, "min_sev_asid": 9},
                                     "kvm": {"SEV": True, "SEV-ES": True}},
        notes=("sevctl#203", "captured: Y")),
    "snphost-ok/sevctl-pr85_milan_sevctl-ok-partial_buggy-phys-addr-reduction-51.txt": Exp(
        "snphost-ok", "-YYY", extra={"cpuid": {"c_bit": 51, "phys_addr_reduction": None, "num_vmpls": 4,
                                               "max_guests": None, "min_sev_asid": None}},
        notes=("known sevctl mis-print",)),
    # 0.6.0 decoded a Milan TCB with the Turin layout; 0.5.0 (second pair) is right
    "snphost-ok/snphost-125_milan-7313p_fw-1.55.29_tcb-output_v0.6.0-vs-v0.5.0.txt": Exp(
        "tcb", extra={"tcb": [
            {"owner": "platform", "microcode": 0, "snp": 0, "tee": 0, "bootloader": 0, "fmc": 0},
            {"owner": "reported", "microcode": 0, "snp": 0, "tee": 0, "bootloader": 4, "fmc": 219},
            {"owner": "platform", "microcode": 219, "snp": 24, "tee": 0, "bootloader": 4},
            {"owner": "reported", "microcode": 219, "snp": 24, "tee": 0, "bootloader": 4}]},
        notes=("Turin layout",)),
    "snphost-ok/snphost-127_snphost-0.6.1_ok-partial_alias-check-fail_tcb-mismatch.txt": Exp(
        "snphost-ok", "----",
        errors=("FAIL Alias check", "FAIL Comparing TCB values: The TCB versions did NOT match"),
        extra={"tcb": [
            {"owner": "platform", "microcode": 213, "snp": 24, "tee": 0, "bootloader": 2, "fmc": None},
            {"owner": "reported", "microcode": 213, "snp": 23, "tee": 0, "bootloader": 2, "fmc": None}]},
        notes=("differ in snp",)),
    "snphost-ok/snphost-README_show-tcb_example_ucode25-snp23-bl10.txt": Exp(
        "tcb", extra={"tcb": [
            {"owner": "reported", "microcode": 25, "snp": 23, "tee": 0, "bootloader": 10, "fmc": None},
            {"owner": "platform", "microcode": 25, "snp": 23, "tee": 0, "bootloader": 10, "fmc": None}]}),
}


def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.fail(f"real captures missing at {REALDATA.resolve()} (expected tests/data/realdata in the clone)")
    return REALDATA


def _letters(features: dict[str, bool | None]) -> str:
    return "".join({True: "Y", False: "N", None: "-"}[features[k]] for k in ("SME", "SEV", "SEV-ES", "SEV-SNP"))


def check(obj: dict[str, Any], exp: Exp) -> None:
    assert obj["kind"] == exp.kind
    assert _letters(obj["features"]) == exp.features, obj["features"]
    assert obj["firmware"] == exp.firmware
    assert obj["asid_counts"] == exp.asid
    assert obj["errors"] == list(exp.errors)
    if exp.vmpl is not ANY:
        assert obj["vmpl"] == exp.vmpl
    for key, want in exp.extra.items():
        assert obj[key] == want, key
    for sub in exp.notes:
        assert any(sub in n for n in obj["notes"]), (sub, obj["notes"])
    if exp.kind not in ("tcb",):
        assert obj["evidence_lines"], "a conclusion without evidence lines"


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_realdata_conclusion(rel: str) -> None:
    path = realdata() / rel
    exp = EXPECTED[rel]
    if exp.reject:
        with pytest.raises(InputError, match=exp.reject) as info:
            analyze_file(path)
        assert str(path) in str(info.value)
        return
    check(analyze_file(path), exp)


def test_every_capture_has_an_expectation() -> None:
    root = realdata()
    files = {str(p.relative_to(root)) for g in COVERED_GLOBS for p in root.glob(g) if p.is_file()}
    assert files, "no captures found"
    missing = sorted(files - set(EXPECTED))
    assert not missing, f"captures without an expectation row in {__file__}: {missing}"
    stale = sorted(set(EXPECTED) - files)
    assert not stale, f"expectation rows for files that no longer exist: {stale}"


def test_cli_json_matches_the_table_for_all_captures() -> None:
    """The same table, through the real command line, all files at once."""
    root = realdata()
    good = sorted(r for r, e in EXPECTED.items() if not e.reject)
    proc = subprocess.run([sys.executable, "-m", "sevkit", "analyze", "--json",
                           *(str(root / r) for r in good)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = json.loads(proc.stdout)
    assert [o["file"] for o in out] == [str(root / r) for r in good]
    for rel, obj in zip(good, out, strict=True):
        check(obj, EXPECTED[rel])


def test_host_api_for_the_probe() -> None:
    """The names the host probe relies on: typed values, tuples for ranges, evidence kept."""
    text = (realdata() / "dmesg-host/hb-os_genoa-dell-r6615_6.9.0-rc7-snp-host_snp-fully-enabled.txt").read_text()
    h = parse_host_dmesg(text)
    assert h.features == {"SME": None, "SEV": True, "SEV-ES": True, "SEV-SNP": True}
    assert h.firmware == {"sev_api": "1.55", "sev_build": 38, "snp_api": "1.55", "snp_build": 38}
    assert h.asid_ranges == {"SEV": (100, 1006), "SEV-ES": (1, 99), "SEV-SNP": (1, 99)}
    assert h.rmp_range == (0x601D200000, 0x607DAFFFFF)
    assert h.iommu_snp is True
    assert "[    4.246111] AMD-Vi: IOMMU SNP support enabled." in h.evidence_lines
    assert not any("usb" in ln for ln in h.evidence_lines)
    with pytest.raises(AttributeError):
        h.errors = []   # type: ignore[misc]   # frozen
