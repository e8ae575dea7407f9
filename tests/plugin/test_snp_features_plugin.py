"""suites/snp_features in a real pytest run with SYNTHETIC hosts (helpers/capsraw.py): NOT-APPLICABLE skips with
evidence, the SEV-ES profile note as a FAIL, and --sev-allow-destructive validated at start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"

CONFTEST = f'''
import json
import os
import sys
sys.path.insert(0, {str(TESTS)!r})
pytest_plugins = ["fixtures.options", "fixtures.evidence", "fixtures.host", "fixtures.guest",
                  "fixtures.attestation", "fixtures.capabilities"]

def pytest_configure(config):
    from helpers.capsraw import VM_DEFAULT, VM_SEV, VM_SNP, err, qmp, with_caps
    from helpers.hostraw import make_raw
    from fixtures.host import set_probe_result
    hosts = {{
        "intel": lambda: with_caps(make_raw(vendor="GenuineIntel", max_ext=0x80000008, leaf_1f=None,
                                            dev_sev=False, kvm_module=False, qemu_version="7.2.22"),
                                   vm_types=VM_DEFAULT, policy_bits=err(6), params={{}},
                                   qemu=qmp(sev_caps=None, snp_props=None, igvm=False)),
        "es_withdrawn": lambda: with_caps(vm_types=VM_DEFAULT | VM_SEV | VM_SNP),
        "healthy": lambda: with_caps(),
    }}
    set_probe_result(config, hosts[os.environ["SEVKIT_TEST_HOST"]]())
'''


def run_suite(tmp_path: Path, host: str, *args: str) -> tuple[int, str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\nmarkers =\n"
                                         "    requires(*features): host features\n    qemu: boots QEMU\n")
    shutil.copy(REPO / "suites" / "snp_features" / "test_snp_features.py", tmp_path / "test_snp_features.py")
    env = dict(os.environ, PYTHONPATH=str(REPO), SEVKIT_TEST_HOST=host)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-rA", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_no_sev_host_every_requirement_not_applicable_with_evidence(tmp_path: Path) -> None:
    code, out = run_suite(tmp_path, "intel")
    assert code == 0, out
    assert "29 skipped" in out and "1 passed" in out, out
    skips = [ln for ln in out.splitlines() if ln.startswith("SKIPPED")]
    assert skips and all("NOT-APPLICABLE: " in ln for ln in skips), skips
    assert "kvm.vm_types={'mask': 1, 'types': ['default']}" in out
    assert "qemu.sev_snp_guest=absent (QEMU says: Class 'sev-snp-guest' not found" in out


def test_profile_demanding_sev_es_says_why_it_cannot_be_met(tmp_path: Path) -> None:
    code, out = run_suite(tmp_path, "es_withdrawn", "--sev-expect", "sev-es", "-k", "sev_es_offered")
    assert code == 1, out
    assert "profile sev-es demands SEV-ES guests, which this host cannot deliver: SEV-ES withdrawn" in out
    code, out = run_suite(tmp_path, "es_withdrawn", "--sev-expect", "sev-snp", "-k", "sev_es_offered")
    assert code == 0 and "NOT-APPLICABLE: SEV-ES withdrawn" in out, out     # SNP guests still run
    code, out = run_suite(tmp_path, "es_withdrawn", "-k", "sev_es_offered")
    assert code == 0 and "NOT-APPLICABLE: SEV-ES withdrawn" in out, out


def test_allow_destructive_is_validated_and_gates_snp_config(tmp_path: Path) -> None:
    code, out = run_suite(tmp_path, "healthy", "--sev-allow-destructive", "maybe", "-k", "snp_config")
    assert code == 2 and ("sevkit: error: --sev-allow-destructive / sev_allow_destructive (command line): "
                          "'maybe' is not accepted; expected yes or no") in out, out
    code, out = run_suite(tmp_path, "healthy", "-k", "snp_config")
    assert code == 0 and "not run: SNP_CONFIG changes the platform's reported TCB" in out, out
    assert "NOT-APPLICABLE: SNP_CONFIG" not in out
    code, out = run_suite(tmp_path, "healthy", "--sev-allow-destructive", "yes", "-k", "snp_config")
    # The rule applies on the synthetic host; this machine has no /dev/sev, so the library refuses (ERROR)
    # before any guest boots or anything is set.
    assert code != 0 and "cannot open /dev/sev read-write" in out, out
    assert "1 error" in out or "1 failed" in out, out


def test_igvm_applies_and_goes_on_to_the_snp_guest(tmp_path: Path) -> None:
    """The rule applies on the SYNTHETIC healthy host: the test goes past the rule to the SNP guest, which this
    machine (no /dev/sev) cannot run, and says so; nothing claims a missing predictor any more."""
    code, out = run_suite(tmp_path, "healthy", "-k", "igvm")
    assert code == 0, out
    skip = next(ln for ln in out.splitlines() if ln.startswith("SKIPPED"))
    assert "NOT-APPLICABLE" not in skip and "predictor" not in skip, skip
    assert "sev-snp guest cannot run on this host" in skip, skip


def test_sev_igvm_is_validated_at_start(tmp_path: Path) -> None:
    """--sev-igvm names a file that is read and parsed before collection: a malformed one is one line, exit 2
    (SYNTHETIC file: 24 bytes that are not an IGVM header)."""
    bad = tmp_path / "bad.igvm"
    bad.write_bytes(b"NOTIGVM!" + bytes(16))
    code, out = run_suite(tmp_path, "healthy", "--sev-igvm", str(bad), "-k", "igvm")
    assert code == 2, out
    lines = [ln for ln in out.splitlines() if ln.startswith("sevkit: error:")]
    assert lines == [f"sevkit: error: --sev-igvm / sev_igvm (command line): '{bad}' is not accepted; expected a "
                     f"readable IGVM file: IGVM file {bad}: not a valid IGVM file: at offset 0x0: bad magic "
                     "0x49544f4e (an IGVM file starts with 'IGVM', 0x4d564749)"], out
    code, out = run_suite(tmp_path, "healthy", "--sev-igvm", str(tmp_path / "absent.igvm"), "-k", "igvm")
    assert code == 2 and "--sev-igvm / sev_igvm (command line)" in out and "absent.igvm" in out, out


def _guest_suite(tmp_path: Path, host: str, *args: str) -> tuple[int, str, dict[str, dict[str, object]]]:
    """suites/guest's encryption tests for the sev-es kind, with the results plugin, on a SYNTHETIC host."""
    tmp_path.mkdir()
    (tmp_path / "conftest.py").write_text(CONFTEST.replace('"fixtures.capabilities"]',
                                                           '"fixtures.capabilities", "fixtures.results"]'))
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\nmarkers =\n"
                                         "    requires(*features): host features\n    qemu: boots QEMU\n"
                                         "    guest_type(kind): guest kind\n")
    shutil.copy(REPO / "suites" / "guest" / "test_guest_encryption.py", tmp_path / "test_guest_encryption.py")
    env = dict(os.environ, PYTHONPATH=str(REPO), SEVKIT_TEST_HOST=host)
    reports = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-rA", f"--sev-report-dir={reports}",
                           "-k", "sev-es and banner", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    result = json.loads(next(reports.glob("*/result.json")).read_text())
    reqs = {r["id"]: r for r in result["requirements"]}
    return proc.returncode, proc.stdout + proc.stderr, reqs


def test_withdrawn_sev_es_makes_every_sev_es_guest_requirement_not_applicable(tmp_path: Path) -> None:
    """Issue 13 §6 across the suite: the session's sev-es guest is never launched when KVM withdrew the SEV-ES VM
    type; its requirements are NOT-APPLICABLE with the reason, under the sev-snp profile too; only the sev-es
    profile FAILs, saying why."""
    code, out, reqs = _guest_suite(tmp_path / "snp", "es_withdrawn", "--sev-expect", "sev-snp")
    assert code == 0, out[-3000:]
    banner = reqs["SEVES-GUEST-001"]
    assert banner["outcome"] == "NOT-APPLICABLE", banner
    assert "SEV-ES withdrawn" in str(banner["reason"]) and "kvm.vm_types=" in str(banner["reason"])
    code, out, reqs = _guest_suite(tmp_path / "es", "es_withdrawn", "--sev-expect", "sev-es")
    assert code == 1, out[-3000:]
    assert reqs["SEVES-GUEST-001"]["outcome"] == "FAIL"
    assert "--sev-expect sev-es demands SEV-ES guests, which this host cannot deliver: SEV-ES withdrawn" in out
