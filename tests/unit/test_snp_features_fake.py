"""FAKE TRANSPORT run of suites/snp_features' mitigation-vector test, not an SNP claim.

The real suite file and fixtures run under pytester with three stand-ins: the capabilities say SNP
and SNP_VERIFY_MITIGATION are offered (SYNTHETIC, helpers/capsraw.py), the "SNP guest" returns a real
captured version-5 report (oak/genoa_oc_report.extracted.bin: LAUNCH_MIT_VECTOR = CURRENT_MIT_VECTOR
= 0x1), and the host's /sys/firmware/sev/vulnerabilities is a SYNTHETIC folder in the kernel's format.
So the whole test body runs, and each verdict rule decides an outcome the junit file shows.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.attestdata import ATT, require_realdata

REPO = Path(__file__).resolve().parents[2]
REPORT = ATT / "oak/genoa_oc_report.extracted.bin"

CONFTEST = '''
import pytest
from helpers.capsraw import with_caps
from sevkit.attestation import load_report
from sevkit.attestation.mitigations import read_host_vectors
from sevkit.host.capabilities import read
from pathlib import Path

pytest_plugins = ["fixtures.options", "fixtures.evidence", "fixtures.capabilities"]
SYSFS = Path({sysfs!r})

@pytest.fixture(scope="session")
def host_caps():
    return read(with_caps(mitigations=("0x1\\n", "0x1\\n")))

@pytest.fixture(scope="session")
def host_mitigations():
    return lambda: read_host_vectors(SYSFS)

@pytest.fixture
def get_snp_report():
    raw = Path({report!r}).read_bytes()
    return lambda nonce=None: (None, load_report(raw, "real v5 report (canned)"))

def pytest_configure(config):
    config.addinivalue_line("markers", "requires(*f): host features")
    config.addinivalue_line("markers", "guest_type(kind): guest kind")
'''


def _run(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, supported: str,
         verified: str, *args: str) -> tuple[str, dict[str, object], str]:
    require_realdata()
    sysfs = tmp_path / "vulnerabilities"
    sysfs.mkdir()
    (sysfs / "supported_mitigations").write_text(supported + "\n")
    (sysfs / "verified_mitigations").write_text(verified + "\n")
    pytester.makeconftest(CONFTEST.format(sysfs=str(sysfs), report=str(REPORT)))
    shutil.copy(REPO / "suites" / "snp_features" / "test_snp_features.py", pytester.path)
    monkeypatch.setenv("PYTHONPATH", f"{REPO}:{REPO / 'tests'}")
    reports = tmp_path / "reports"
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sev-report-dir={reports}",
                                        "-rs", "-k", "mitigation_vectors", *args)
    junit = next(reports.glob("*/junit.xml"))
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert len(cases) == 1, res.stdout.str()[-3000:]
    case = cases[0]
    outcome = next((tag for tag in ("failure", "error", "skipped") if case.find(tag) is not None), "passed")
    evidence = json.loads(next(junit.parent.glob("*mitigation_vectors*/mitigations.json")).read_text())
    return outcome, evidence, res.stdout.str()


def test_agreeing_host_passes_with_the_verified_bits_as_evidence(pytester: pytest.Pytester, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    outcome, ev, out = _run(pytester, tmp_path, monkeypatch, "0x3", "0x1")
    assert outcome == "passed", out[-3000:]
    assert ev["report"] == {"launch_mit_vector": "0x1", "current_mit_vector": "0x1"}
    assert ev["verified_bits"] == [0] and ev["supported_bits"] == [0, 1] and ev["failures"] == []


def test_a_verified_bit_missing_from_the_report_fails(pytester: pytest.Pytester, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    outcome, ev, out = _run(pytester, tmp_path, monkeypatch, "0x3", "0x3")
    assert outcome == "failure", out[-3000:]
    assert "CURRENT_MIT_VECTOR 0x1 lacks bits [1]" in out
    assert ev["failures"] == ["CURRENT_MIT_VECTOR 0x1 lacks bits [1] that the host's SNP_VERIFY_MITIGATION "
                              "STATUS lists as verified (0x3)"]


def test_the_labs_floor_fails_a_report_without_the_bit(pytester: pytest.Pytester, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    outcome, _, out = _run(pytester, tmp_path, monkeypatch, "0x1", "0x1", "--sev-min-current-mit-vector=0x4")
    assert outcome == "failure", out[-3000:]
    assert "CURRENT_MIT_VECTOR 0x1 lacks bits [2] the lab requires (0x4)" in out
