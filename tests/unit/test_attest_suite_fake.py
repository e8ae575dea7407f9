"""FAKE TRANSPORT run of suites/attestation, not an SNP claim.

The real suite file and fixtures/attestation.py run under pytester with a stand-in guest pool:
its "SNP guest" answers over a local shell from a fake configfs-tsm tree whose outblob is a real
captured Milan report (virtee-sev/report_milan.bin, policy 0x30000, VMPL 0, TCB 3/0/8/115) and
whose auxblob carries that report's real VCEK. A canned report cannot carry our nonce, so the
nonce, two-report and measurement tests MUST fail here: that is what this test checks, along
with the evidence each test leaves behind.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_attest_realdata import ATT, require_realdata

REPO = Path(__file__).resolve().parents[2]

CONFTEST = '''
import re, shlex, subprocess, sys, time
from pathlib import Path
import pytest
from sevkit.attestation.certtable import build_cert_table
from sevkit.qemu.firmware import find_bios
from sevkit.qemu.spec import GuestSpec
from sevkit.results import CommandResult

pytest_plugins = ["fixtures.options", "fixtures.evidence", "fixtures.attestation"]
ATT = Path({att!r})
ROOT = Path({root!r})

class FakeShell:
    def run(self, cmd, timeout=None):
        entry = re.search(r"--entry (\\S+)", cmd)
        if entry:
            cmd = cmd.replace("/sys/kernel/config/tsm/report", str(ROOT))
            d = ROOT / shlex.split(entry.group(1))[0]
            d.mkdir(parents=True, exist_ok=True)
            (d / "provider").write_text("sev_guest\\n")
            (d / "generation").write_text("1\\n")
            (d / "outblob").write_bytes((ATT / "virtee-sev/report_milan.bin").read_bytes())
            (d / "auxblob").write_bytes(build_cert_table({{"VCEK": (ATT / "virtee-sev/vcek_milan.der").read_bytes()}}))
        cmd = cmd.replace("python3 ", sys.executable + " ", 1)
        t = time.monotonic()
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        return CommandResult(cmd, p.stdout, p.returncode, time.monotonic() - t, p.stderr, "fake-local")

class FakeGuest:
    ssh = FakeShell()
    spec = GuestSpec(kind="sev-snp", accel="kvm", qemu_version=(9, 1, 0), cpu="EPYC-v4", vcpus=2,
                     firmware=find_bios(), disk=Path("/dev/null"), cbitpos=51, reduced_phys_bits=1)

class FakePool:
    def get(self, kind):
        assert kind == "sev-snp"
        return FakeGuest()

@pytest.fixture(scope="session")
def guest_pool():
    return FakePool()

def pytest_configure(config):
    config.addinivalue_line("markers", "requires(*f): host features")
    config.addinivalue_line("markers", "guest_type(kind): guest kind")
'''


def test_suite_against_a_canned_real_report(pytester: pytest.Pytester, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    require_realdata()
    tsm = tmp_path / "tsm"
    tsm.mkdir()
    pytester.makeconftest(CONFTEST.format(att=str(ATT.resolve()), root=str(tsm)))
    shutil.copy(REPO / "suites" / "attestation" / "test_snp_attestation.py", pytester.path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    reports = tmp_path / "reports"
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--sev-kds-url", "off", f"--sev-report-dir={reports}",
        "--sev-min-tcb", "bl=3,tee=0,snp=8,ucode=115", "-o", "sev_expect=none")
    outcomes = {}
    junit = next(reports.glob("*/junit.xml"))
    for case in ET.parse(junit).getroot().iter("testcase"):
        status = "failed" if case.find("failure") is not None else (
            "error" if case.find("error") is not None else ("skipped" if case.find("skipped") is not None
                                                               else "passed"))
        outcomes[case.get("name")] = status
    assert outcomes == {
        "test_report_verifies": "passed",                          # real report, real VCEK, shipped roots
        "test_report_data_equals_nonce": "failed",                 # canned report: not our nonce
        "test_two_reports_differ_only_in_report_data_and_signature": "failed",   # identical reports
        "test_measurement_equals_expected": "failed",              # not launched from Debian's OVMF
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


def test_minimum_tcb_violation_fails(pytester: pytest.Pytester, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    require_realdata()
    tsm = tmp_path / "tsm"
    tsm.mkdir()
    pytester.makeconftest(CONFTEST.format(att=str(ATT.resolve()), root=str(tsm)))
    shutil.copy(REPO / "suites" / "attestation" / "test_snp_attestation.py", pytester.path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--sev-kds-url", "off", f"--sev-report-dir={tmp_path / 'r'}",
        "--sev-min-tcb", "snp=9", "-k", "minimum")
    res.assert_outcomes(failed=1, deselected=6)
    assert "snpSPL 8 < 9" in res.stdout.str()
