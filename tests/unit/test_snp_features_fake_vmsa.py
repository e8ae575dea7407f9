"""FAKE TRANSPORT run of suites/snp_features' VMSA-feature tests (Secure TSC, DebugSwap, the session guest),
not an SNP claim.

The real suite file and fixtures run under pytester. The host's capabilities are SYNTHETIC (helpers/capsraw.py:
KVM offers DebugSwap and SecureTSC, VMSA mask 0x220, and QEMU has secure-tsc and debug-swap), and the "SNP
guests" are stand-ins whose SEV_STATUS (rdmsr) and 'SEV: Status:' dmesg line are SYNTHETIC, written in the
kernel's format (arch/x86/coco/sev: "SEV: Status:" then one name per SEV_STATUS bit). Each mode makes the
stand-in behave one way; the junit outcomes show which test bodies catch it.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CONFTEST = '''
import os
from pathlib import Path
import pytest
from helpers.capsraw import SNP_PROPS, qmp, with_caps
from sevkit import snpbits
from sevkit.host.capabilities import read
from sevkit.qemu.firmware import Firmware
from sevkit.qemu.spec import GuestSpec
from sevkit.results import CommandResult

pytest_plugins = ["fixtures.options", "fixtures.evidence", "fixtures.capabilities"]
MODE = os.environ["SK_FAKE_MODE"]

class FakeVM:
    def __init__(self, spec):
        self.spec = spec
        status = snpbits.sev_status_for_vmsa(spec.vmsa_features)
        if MODE == "extra-securetsc":
            status |= 1 << 11                 # the guest runs SecureTSC although it was not asked for
        self.status = status
        names = snpbits.names(status, snpbits.SEV_STATUS_NAMES)
        self.line = "SEV: Status: " + " ".join(names[:-1] if MODE == "line-drops-one" else names) + " "

    def boot(self):
        pass

    def shutdown(self, grace=None):
        pass

    def run(self, cmd, timeout=None):
        out = f"[    0.30] {self.line}\\n" if cmd == "dmesg" else f"{self.status:x}\\n"
        return CommandResult(cmd, out, 0, 0.0, "", "fake")

class FakePool:
    def require(self, kind):
        assert kind == "sev-snp"

    def spec(self, kind, name="snp", **over):
        return GuestSpec(kind="sev-snp", name=name, accel="kvm", qemu_version=(10, 2, 0),
                         firmware=Firmware("bios", image=Path("/fw/OVMF.fd")), cbitpos=51, reduced_phys_bits=1,
                         disk=Path("/dev/null"), check=False, **over)

    def new_vm(self, spec, name=None):
        return FakeVM(spec)

    def get(self, kind):
        return FakeVM(self.spec(kind))

@pytest.fixture(scope="session")
def host_caps():
    return read(with_caps(vmsa=0x220, qemu=qmp(snp_props=(*SNP_PROPS, "secure-tsc", "debug-swap"))))

@pytest.fixture(scope="session")
def guest_pool():
    return FakePool()

def pytest_configure(config):
    config.addinivalue_line("markers", "requires(*f): host features")
    config.addinivalue_line("markers", "guest_type(kind): guest kind")
'''
TESTS = ("test_snp_secure_tsc", "test_snp_debug_swap", "test_snp_vmsa_features_match_sev_status")


def _run(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> dict[str, str]:
    pytester.makeconftest(CONFTEST)
    shutil.copy(REPO / "suites" / "snp_features" / "test_snp_features.py", pytester.path)
    monkeypatch.setenv("PYTHONPATH", f"{REPO}:{REPO / 'tests'}")
    monkeypatch.setenv("SK_FAKE_MODE", mode)
    reports = tmp_path / "reports"
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sev-report-dir={reports}", "-rA",
                                        "-k", " or ".join(TESTS))
    junit = next(reports.glob("*/junit.xml"))
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        out[str(case.get("name"))] = next((t for t in ("failure", "error", "skipped") if case.find(t) is not None),
                                          "passed")
    assert set(out) == set(TESTS), res.stdout.str()[-3000:]
    return out | {"_stdout": res.stdout.str()}


def test_guests_running_exactly_what_was_launched_pass(pytester: pytest.Pytester, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = _run(pytester, tmp_path, monkeypatch, "honest")
    assert {t: out[t] for t in TESTS} == dict.fromkeys(TESTS, "passed"), out["_stdout"][-3000:]


def test_an_unrequested_feature_fails_every_guest_not_launched_with_it(pytester: pytest.Pytester, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = _run(pytester, tmp_path, monkeypatch, "extra-securetsc")
    assert {t: out[t] for t in TESTS} == {"test_snp_secure_tsc": "passed", "test_snp_debug_swap": "failure",
                                         "test_snp_vmsa_features_match_sev_status": "failure"}, out["_stdout"][-3000:]
    assert "launched with VMSA features 0x20, which give 0x87" in out["_stdout"]


def test_a_status_line_that_drops_a_name_fails(pytester: pytest.Pytester, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = _run(pytester, tmp_path, monkeypatch, "line-drops-one")
    assert {t: out[t] for t in TESTS} == dict.fromkeys(TESTS, "failure"), out["_stdout"][-3000:]
    assert "'SEV: Status:' names" in out["_stdout"]
