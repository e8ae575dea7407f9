"""FAKE TRANSPORT run of suites/attestation, not an SNP claim.

The real suite file and fixtures/attestation.py run under pytester with a stand-in guest pool:
its "SNP guest" answers over a local shell from a fake configfs-tsm tree whose outblob is a real
captured Milan report (virtee-sev/report_milan.bin, policy 0x30000, VMPL 0, TCB 3/0/8/115) and
whose auxblob carries that report's real VCEK. A canned report cannot carry our nonce, so the
nonce, two-report and measurement tests MUST fail here: that is what this test checks, along
with the evidence each test leaves behind. The fake guest is "launched" from Debian's real OVMF.fd
(no SNP kernel hashes, so the kernel-coverage test must fail with the AmdSevX64 hint), or from a
SYNTHETIC OVMF-like file with kernel-hashes=on (that test passes, the digest covers the kernel).
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from helpers.attestdata import ATT, require_realdata
from helpers.forgery import forge
from helpers.httpserve import serve
from helpers.ovmf import AMDSEV_X64, craft_ovmf

from sevkit.attestation import load_report
from sevkit.attestation.certtable import build_cert_table
from sevkit.attestation.kds import cache_name
from sevkit.attestation.measure import LaunchInputs, expected_measurement

REPO = Path(__file__).resolve().parents[2]
DEBIAN_OVMF = "/usr/share/ovmf/OVMF.fd"   # real Debian 12 combined OVMF: SNP metadata, no SNP kernel hashes


# The host's CPUID Fn0000_0001 EAX for the fake host: family 19h model 01h stepping 1, the CPUID
# fields of the real AWS Milan v3 report (constellation/aws_report.txt), encoded as CPUID does.
MILAN_EAX1 = "0x00a00f11"


def _setup(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           fw: str = DEBIAN_OVMF, kernel_hashes: bool = False, outblob: Path | None = None,
           auxblob: bytes | None = None, eax1: str = MILAN_EAX1) -> None:
    """The fake SNP guest, launched from ``fw`` with a SYNTHETIC kernel/initrd (only their hashes matter).
    ``outblob``/``auxblob``: what the guest's configfs-tsm returns (default the real Milan report and a
    certificate table with its real VCEK)."""
    require_realdata()
    tsm, boot = tmp_path / "tsm", tmp_path / "boot"
    tsm.mkdir()
    boot.mkdir()
    (boot / "vmlinuz").write_bytes(b"SYNTHETIC kernel " * 100)
    (boot / "initrd.img").write_bytes(b"SYNTHETIC initrd " * 100)
    if auxblob is None:
        auxblob = build_cert_table({"VCEK": (ATT / "virtee-sev/vcek_milan.der").read_bytes()})
    (tmp_path / "auxblob").write_bytes(auxblob)
    pytester.makeconftest(CONFTEST.format(
        att=str(ATT.resolve()), root=str(tsm), boot=str(boot), fw=fw, kh=kernel_hashes, eax1=eax1,
        outblob=str(outblob or ATT / "virtee-sev/report_milan.bin"), auxblob=str(tmp_path / "auxblob")))
    shutil.copy(REPO / "suites" / "attestation" / "test_snp_attestation.py", pytester.path)
    monkeypatch.setenv("PYTHONPATH", f"{REPO}:{REPO / 'tests'}")


def _outcomes(junit: Path) -> dict[str | None, str]:
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        status = "failed" if case.find("failure") is not None else (
            "error" if case.find("error") is not None else ("skipped" if case.find("skipped") is not None
                                                               else "passed"))
        outcomes[case.get("name")] = status
    return outcomes

CONFTEST = '''
from pathlib import Path
import pytest
from helpers.tsmshell import TsmShell
from sevkit.attestation.certtable import build_cert_table
from sevkit.qemu.firmware import find_bios
from sevkit.qemu.spec import GuestSpec

pytest_plugins = ["fixtures.options", "fixtures.evidence", "fixtures.attestation"]
ATT = Path({att!r})
ROOT = Path({root!r})
BOOT = Path({boot!r})
FW = {fw!r}
KH = {kh!r}
OUTBLOB = Path({outblob!r})
AUXBLOB = Path({auxblob!r})

class FakeGuest:
    ssh = TsmShell(ROOT, OUTBLOB, AUXBLOB)
    spec = GuestSpec(kind="sev-snp", accel="kvm", qemu_version=(9, 1, 0), cpu="EPYC-v4", vcpus=2,
                     firmware=find_bios(FW), kernel=BOOT / "vmlinuz", initrd=BOOT / "initrd.img",
                     append="console=ttyS0", disk=Path("/dev/null"), cbitpos=51, reduced_phys_bits=1,
                     kernel_hashes=KH)
    argv = ["qemu-system-x86_64", "-object",
            "sev-snp-guest,id=sev0,policy=0x30000,cbitpos=51,reduced-phys-bits=1" + (",kernel-hashes=on" if KH else "")]

class FakePool:
    def get(self, kind):
        assert kind == "sev-snp"
        return FakeGuest()

class FakeHostReport:
    identity = {{"cpuid_1_eax": {eax1!r}, "generation": "Milan"}}

@pytest.fixture(scope="session")
def guest_pool():
    return FakePool()

@pytest.fixture(scope="session")
def host_report():
    return FakeHostReport()

def pytest_configure(config):
    config.addinivalue_line("markers", "requires(*f): host features")
    config.addinivalue_line("markers", "guest_type(kind): guest kind")
'''


def test_suite_against_a_canned_real_report(pytester: pytest.Pytester, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _setup(pytester, tmp_path, monkeypatch)
    reports = tmp_path / "reports"
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--sev-kds-url", "off", f"--sev-report-dir={reports}",
        "--sev-min-tcb", "bl=3,tee=0,snp=8,ucode=115", "-o", "sev_expect=none")
    junit = next(reports.glob("*/junit.xml"))
    outcomes = _outcomes(junit)
    assert outcomes == {
        "test_report_verifies": "passed",                          # real report, real VCEK, shipped roots
        "test_report_data_equals_nonce": "failed",                 # canned report: not our nonce
        "test_two_reports_differ_only_in_report_data_and_signature": "failed",   # identical reports
        "test_measurement_equals_expected": "failed",              # not launched from Debian's OVMF
        "test_launch_measurement_covers_kernel_initrd_cmdline": "failed",   # Debian OVMF: no kernel hashes
        "test_policy_equals_launched_policy": "passed",            # 0x30000 both
        "test_vmpl_zero": "passed",
        "test_reported_tcb_not_below_minimum": "passed",
    }, res.stdout.str()[-3000:]
    run = junit.parent
    shared = run / "attestation-snp-report"
    assert (shared / "report.bin").read_bytes() == (ATT / "virtee-sev/report_milan.bin").read_bytes()
    assert (shared / "vcek.source.txt").read_text().strip() == "cert-table"
    assert len((shared / "expected-measurement.txt").read_text().strip()) == 96
    verdict = next(run.glob("*test_report_verifies*/verdict.json"))
    assert '"verified": true' in verdict.read_text()
    nonce_dir = next(run.glob("*test_report_data_equals_nonce*"))
    assert (nonce_dir / "report1.bin").is_file() and (nonce_dir / "report1.fetch.json").is_file()
    assert "nonce or signature did not change" in res.stdout.str()
    out = res.stdout.str()
    assert "launched without kernel-hashes=on" in out and "AmdSevX64.dsc" in out and DEBIAN_OVMF in out
    mb = json.loads(next(run.glob("*test_launch_measurement_covers*/measured-boot.json")).read_text())
    assert mb["launched_with_kernel_hashes"] is False and mb["firmware"] == DEBIAN_OVMF
    assert mb["firmware_finding"]["kernel_hashes"] is False and "SNP_KERNEL_HASHES" in mb["firmware_finding"]["why"]


def test_measured_direct_boot_guest_passes_the_coverage_check(pytester: pytest.Pytester, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Launched with kernel-hashes=on from a SYNTHETIC OVMF-like file that has the SNP kernel-hashes
    section and AmdSevX64's volumes: the coverage test passes and the expected digest covers kernel,
    initrd and command line (the canned report still cannot match it)."""
    fw = craft_ovmf(tmp_path / "OVMF.amdsev.fd", files=AMDSEV_X64)
    _setup(pytester, tmp_path, monkeypatch, fw=str(fw), kernel_hashes=True)
    reports = tmp_path / "reports"
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--sev-kds-url", "off", f"--sev-report-dir={reports}", "-o", "sev_expect=none",
        "-k", "measurement")
    junit = next(reports.glob("*/junit.xml"))
    assert _outcomes(junit) == {"test_measurement_equals_expected": "failed",
                                "test_launch_measurement_covers_kernel_initrd_cmdline": "passed"}, \
        res.stdout.str()[-3000:]
    shared = junit.parent / "attestation-snp-report"
    inputs = json.loads((shared / "launch-inputs.json").read_text())
    assert inputs["kernel_hashes"] == "True" and inputs["kernel"] == str(tmp_path / "boot" / "vmlinuz")
    expected = expected_measurement(LaunchInputs(mode="sev-snp", ovmf=fw, vcpus=2, kernel=tmp_path / "boot" / "vmlinuz",
                                                 initrd=tmp_path / "boot" / "initrd.img", append="console=ttyS0",
                                                 kernel_hashes=True))
    assert (shared / "expected-measurement.txt").read_text().strip() == expected.hex()


def test_minimum_tcb_violation_fails(pytester: pytest.Pytester, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _setup(pytester, tmp_path, monkeypatch)
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--sev-kds-url", "off", f"--sev-report-dir={tmp_path / 'r'}",
        "--sev-min-tcb", "snp=9", "-k", "minimum")
    res.assert_outcomes(failed=1, deselected=7)
    assert "snpSPL 8 < 9" in res.stdout.str()


def test_suite_refuses_a_host_supplied_forged_chain(pytester: pytest.Pytester, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9 item 1, suite path: the host puts a complete FORGED ARK/ASK/VCEK (test_attest_forgery,
    AMD-looking names) in the certificate table and the guest returns the report that VCEK signed.
    test_report_verifies must fail on the trust rule, as ``sevkit attest verify`` does."""
    f = forge("amd-names")
    (tmp_path / "forged.bin").write_bytes(f["report"])
    ask_pem, ark_pem = f["chain"].split(b"-----END CERTIFICATE-----\n", 1)
    der = {name: x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER) for name, pem in
           (("VCEK", f["vcek"]), ("ASK", ask_pem + b"-----END CERTIFICATE-----\n"), ("ARK", ark_pem))}
    _setup(pytester, tmp_path, monkeypatch, outblob=tmp_path / "forged.bin", auxblob=build_cert_table(der))
    reports = tmp_path / "reports"
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sev-kds-url", "off",
                                        f"--sev-report-dir={reports}", "-o", "sev_expect=none", "-k", "verifies")
    junit = next(reports.glob("*/junit.xml"))
    assert _outcomes(junit) == {"test_report_verifies": "failed"}, res.stdout.str()[-3000:]
    verdict = json.loads(next(junit.parent.glob("*test_report_verifies*/verdict.json")).read_text())
    assert verdict["verified"] is False and verdict["trust_root"] is None
    assert verdict["chain_source"] == "certificate table (host-supplied)"
    assert [c["name"] for c in verdict["checks"] if c["status"] == "fail"] == ["ark_is_trusted_root"]


def test_v2_report_takes_the_product_from_the_host_probe(pytester: pytest.Pytester, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9 item 3: the real Milan v2 report (no CPUID fields) with no certificate table: the VCEK
    must come from the cache, which needs the product. The fake host probe's CPUID says Milan; before,
    obtain_vcek had no product for a v2 report and every dependent test ERRORed."""
    cache = tmp_path / "vcek-cache"
    cache.mkdir()
    report = load_report((ATT / "virtee-sev/report_milan.bin").read_bytes())
    assert report.version == 2 and report.product is None
    (cache / cache_name("Milan", report)).write_bytes((ATT / "virtee-sev/vcek_milan.der").read_bytes())
    _setup(pytester, tmp_path, monkeypatch, auxblob=b"")
    reports = tmp_path / "reports"
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sev-kds-url", "off", f"--sev-vcek-cache={cache}",
                                        f"--sev-report-dir={reports}", "-o", "sev_expect=none", "-k", "verifies")
    junit = next(reports.glob("*/junit.xml"))
    assert _outcomes(junit) == {"test_report_verifies": "passed"}, res.stdout.str()[-3000:]
    shared = junit.parent / "attestation-snp-report"
    assert (shared / "vcek.source.txt").read_text().startswith("cache:")
    assert json.loads((shared / "report.json").read_text())["product"] == "Milan"


def test_vcek_from_a_loopback_kds_named_in_sev_kds_url(pytester: pytest.Pytester, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """--sev-kds-url http://127.0.0.1:PORT (a lab's local KDS mirror on loopback): accepted at start and
    used; with no certificate table the VCEK comes from it (the real Milan VCEK, served for the KDS path),
    and the report verifies. Plain http to any other host is refused at start (test_options_table)."""
    vcek = (ATT / "virtee-sev/vcek_milan.der").read_bytes()
    paths: list[str] = []

    def answer(path: str) -> tuple[int, bytes, dict[str, str]]:
        paths.append(path)
        ok = path.startswith("/vcek/v1/Milan/") and "cert_chain" not in path
        return (200, vcek, {}) if ok else (404, b"Not Found", {})

    with serve(answer) as base:
        _setup(pytester, tmp_path, monkeypatch, auxblob=b"")
        reports = tmp_path / "reports"
        res = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", f"--sev-kds-url={base}",
            f"--sev-report-dir={reports}", "-o", "sev_expect=none", "-k", "verifies")
    junit = next(reports.glob("*/junit.xml"))
    assert _outcomes(junit) == {"test_report_verifies": "passed"}, res.stdout.str()[-3000:]
    assert any(p.startswith("/vcek/v1/Milan/") for p in paths), paths
    assert "KDS" in (junit.parent / "attestation-snp-report" / "vcek.source.txt").read_text().upper()


def test_measured_but_not_enforced_is_a_clear_failure(pytester: pytest.Pytester, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9 item 5: a SYNTHETIC OVMF with the SNP kernel-hashes section whose volumes are an
    OvmfPkgX64 build's (QemuKernelLoaderFsDxe, no AmdSevX64-only files): the coverage test must not
    pass; it fails saying "measured, not enforced" with the evidence."""
    from sevkit.host.ovmf import KERNEL_LOADER
    fw = craft_ovmf(tmp_path / "OVMF.x64.fd", files=[KERNEL_LOADER])
    _setup(pytester, tmp_path, monkeypatch, fw=str(fw), kernel_hashes=True)
    reports = tmp_path / "reports"
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--sev-kds-url", "off", f"--sev-report-dir={reports}", "-o", "sev_expect=none",
        "-k", "covers")
    junit = next(reports.glob("*/junit.xml"))
    assert _outcomes(junit) == {"test_launch_measurement_covers_kernel_initrd_cmdline": "failed"}, \
        res.stdout.str()[-3000:]
    assert "measured, not enforced" in res.stdout.str() and "BlobVerifierLibNull" in res.stdout.str()
    mb = json.loads(next(junit.parent.glob("*test_launch_measurement_covers*/measured-boot.json")).read_text())
    assert mb["firmware_finding"]["hashes_enforced"] is False and mb["firmware_finding"]["kernel_hashes"] is True
