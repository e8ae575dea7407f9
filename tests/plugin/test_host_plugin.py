"""fixtures/host.py in a real pytest run: requires() marker, profile rules, host.json, exit codes.

Each case runs a small suite in a subprocess with the real fixtures/ plugins. The host is a
SYNTHETIC RawInputs (tests/unit/hostraw.py) injected with fixtures.host.set_probe_result, so the
outcome does not depend on the machine running the self-tests; one case runs suites/host itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sevkit.host import collect_local, grade

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"

CONFTEST = f'''
import os
import sys
sys.path.insert(0, {str(TESTS)!r})
pytest_plugins = ["fixtures.options", "fixtures.evidence", "fixtures.host"]

def pytest_configure(config):
    from helpers.hostraw import ROME, access_denied, make_raw
    from fixtures.host import set_probe_result
    hosts = {{
        "healthy": lambda: make_raw(),
        "rome": lambda: make_raw(eax1=ROME, leaf_1f=(0b1111, 47 | 5 << 6, 509, 10), syscfg=1 << 23),
        "no_msr": lambda: make_raw(msr_error=access_denied(), euid=1000),
    }}
    set_probe_result(config, hosts[os.environ["SEVKIT_TEST_HOST"]]())
'''

BODY = '''
import pytest

@pytest.mark.requires("SEV-SNP")
def test_needs_snp():
    pass

@pytest.mark.requires("SEV")
def test_needs_sev():
    pass

def test_snp_bit(host_check):
    host_check("cpuid.sev_snp")

def test_vmpl(host_check):
    host_check("cpuid.vmpl")
'''


def run_suite(tmp_path: Path, host: str, *args: str) -> tuple[int, str, Path]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\nmarkers =\n"
                                         "    requires(*features): host features\n")
    (tmp_path / "test_case.py").write_text(BODY)
    env = dict(os.environ, PYTHONPATH=str(REPO), SEVKIT_TEST_HOST=host)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-rA", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr, tmp_path / "reports" / "latest"


def test_absent_feature_skips_with_evidence_when_not_expected(tmp_path: Path) -> None:
    code, out, run = run_suite(tmp_path, "rome")
    assert code == 0, out
    assert "SKIPPED" in out and "CPUID Fn8000_001F EAX bit 4 (SEV-SNP) is 0" in out
    assert "PASSED test_case.py::test_needs_sev" in out
    host = json.loads((run / "host.json").read_text())
    assert host["features"]["SEV-SNP"] is False and host["features"]["SEV-ES"] is True
    junit = (run / "junit.xml").read_text()
    assert 'name="host.generation" value="Rome"' in junit
    assert "sevkit host features: SME=yes SEV=yes SEV-ES=yes SEV-SNP=no" in out


def test_expected_missing_feature_fails_not_errors(tmp_path: Path) -> None:
    code, out, _ = run_suite(tmp_path, "rome", "--sev-expect", "sev-snp")
    assert code == 1, out
    assert "FAILED test_case.py::test_needs_snp" in out            # a verdict, not an ERROR
    assert "FAILED test_case.py::test_snp_bit" in out
    assert "SKIPPED" in out and "cpuid.vmpl: CPUID Fn8000_001F EAX bit 4" in out   # child of the failed check
    assert "ERROR" not in out.split("short test summary")[-1]
    assert "expected (--sev-expect sev-snp) but not usable" in out and "Fix:" in out


def test_expected_present_feature_passes(tmp_path: Path) -> None:
    code, out, _ = run_suite(tmp_path, "healthy", "--sev-expect", "sev-snp")
    assert code == 0, out
    assert out.count("PASSED") == 4


def test_unknown_feature_is_an_error_not_a_skip(tmp_path: Path) -> None:
    code, out, _ = run_suite(tmp_path, "no_msr")
    assert code == 2, out
    assert "ERROR test_case.py::test_needs_sev" in out and "cannot tell whether SEV is usable" in out


def test_suites_host_exit_code_matches_probe_verdict(tmp_path: Path) -> None:
    """suites/host on this machine: exit 0 when the probe's profile verdict holds, 1 when it does not."""
    report = grade(collect_local())
    for profile in ("none", "sev-snp"):
        proc = subprocess.run([sys.executable, "-m", "pytest", "suites/host", "-q", "-p", "no:xdist",
                               "--sev-expect", profile, "--sev-report-dir", str(tmp_path / profile)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        verdict = report.verdict(profile)
        want = 2 if verdict.errors else (0 if verdict.holds else 1)
        assert proc.returncode == want, proc.stdout[-3000:]
        assert (tmp_path / profile / "latest" / "host.json").is_file()
        assert (tmp_path / profile / "latest" / "host-bundle.tar.gz").is_file()
