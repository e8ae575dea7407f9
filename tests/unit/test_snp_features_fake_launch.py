"""FAKE TRANSPORT run of suites/snp_features' launch-shape tests (policy bit, host data, ID block), not an SNP
claim.

The real suite file and fixtures run under pytester. The host's capabilities are SYNTHETIC (helpers/capsraw.py:
SNP offered, KVM accepts policy bit 23 RAPL_DIS, QEMU has host-data/id-block/id-auth/author-key-enabled). The
"launched" SNP guests are stand-ins whose configfs-tsm returns a REAL captured Milan report
(virtee-sev/report_milan.bin: POLICY 0x30000, HOST_DATA and ID_KEY_DIGEST all zero; helpers/tsmshell.py).
That report cannot carry what each launch asked for, so every body must run to its assertion and FAIL there:
the ID block test builds its ID block and keys for real (sev-snp-measure digest of Debian's OVMF_CODE.fd).
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.attestdata import ATT, require_realdata

from sevkit.attestation.certtable import build_cert_table

REPO = Path(__file__).resolve().parents[2]
OVMF = "/usr/share/OVMF/OVMF_CODE.fd"

CONFTEST = '''
from pathlib import Path
import pytest
from helpers.capsraw import SNP_PROPS, qmp, with_caps
from helpers.tsmshell import TsmShell
from sevkit.host.capabilities import read
from sevkit.qemu.spec import Firmware, GuestSpec
from sevkit.timeouts import DEFAULT

pytest_plugins = ["fixtures.options", "fixtures.evidence", "fixtures.capabilities"]
SHELL = TsmShell(Path({root!r}), Path({outblob!r}), Path({auxblob!r}))

class FakeVM:
    def __init__(self, spec):
        self.spec, self.ssh = spec, SHELL

    def boot(self):
        pass

    def shutdown(self, grace=None):
        pass

class FakePool:
    run_root = Path({run!r})
    timeouts = DEFAULT

    def require(self, kind):
        assert kind == "sev-snp"

    def spec(self, kind, name="snp", **over):
        return GuestSpec(kind="sev-snp", name=name, accel="kvm", qemu_version=(10, 2, 0), cpu="EPYC-v4", vcpus=1,
                         firmware=Firmware("bios", image=Path({ovmf!r})), cbitpos=51, reduced_phys_bits=1,
                         disk=Path("/dev/null"), check=False, **over)

    def new_vm(self, spec, name=None):
        return FakeVM(spec)

@pytest.fixture(scope="session")
def host_caps():
    return read(with_caps(policy_bits=0x3F0000 | 1 << 23, qemu=qmp(snp_props=SNP_PROPS)))

@pytest.fixture(scope="session")
def guest_pool():
    return FakePool()

def pytest_configure(config):
    config.addinivalue_line("markers", "requires(*f): host features")
    config.addinivalue_line("markers", "guest_type(kind): guest kind")
'''
TESTS = ("test_snp_policy_bit_accepted[RAPL_DIS]", "test_snp_host_data", "test_snp_id_block")


def test_launch_shape_bodies_run_to_their_assertions(pytester: pytest.Pytester, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    require_realdata()
    (tmp_path / "tsm").mkdir()
    (tmp_path / "run").mkdir()
    aux = tmp_path / "auxblob"
    aux.write_bytes(build_cert_table({"VCEK": (ATT / "virtee-sev/vcek_milan.der").read_bytes()}))
    pytester.makeconftest(CONFTEST.format(root=str(tmp_path / "tsm"), outblob=str(ATT / "virtee-sev/report_milan.bin"),
                                          auxblob=str(aux), run=str(tmp_path / "run"), ovmf=OVMF))
    shutil.copy(REPO / "suites" / "snp_features" / "test_snp_features.py", pytester.path)
    monkeypatch.setenv("PYTHONPATH", f"{REPO}:{REPO / 'tests'}")
    reports = tmp_path / "reports"
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--sev-report-dir={reports}", "-rA", "-k",
                                        "RAPL_DIS and accepted or host_data or (id_block and not tampered)")
    out = res.stdout.str()
    junit = next(reports.glob("*/junit.xml"))
    outcomes = {str(c.get("name")): next((t for t in ("failure", "error", "skipped") if c.find(t) is not None),
                                         "passed") for c in ET.parse(junit).getroot().iter("testcase")}
    assert outcomes == dict.fromkeys(TESTS, "failure"), out[-4000:]
    assert "report POLICY 0x30000 lacks bit 23" in out
    assert "HOST_DATA 0000" in out and "!= launched" in out
    assert "ID_KEY_DIGEST is not the digest of this run's ID key" in out
    idb = json.loads(next(junit.parent.glob("*test_snp_id_block*/id-block.json")).read_text())
    assert len(bytes.fromhex(idb["launch_digest"])) == 48 and idb["id_key_digest"] != "00" * 48
    assert list((tmp_path / "run").rglob("id_key.pem")), "the ID key was not made in the run's private folder"
    assert not list((tmp_path / "reports").rglob("*.pem")), "the run's ID/author keys leaked into the report"
