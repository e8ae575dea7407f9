"""The guest fixtures as the suite sees them, run in a subprocess from the repository root
(so the suite's conftest and options load). No guest is booted: only the kinds this host
cannot run are selected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _suite(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "suites/guest", "-p", "no:cacheprovider",
                           f"--sev-report-dir={tmp}", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)


def test_guest_ids_are_exactly_the_four_kinds(tmp_path: Path) -> None:
    out = _suite("--collect-only", "-q", tmp=tmp_path).stdout
    ids = set(re.findall(r"test_query_sev\[([^\]]+)\]", out))
    assert ids == {"plain", "sev", "sev-es", "sev-snp"}
    shells = set(re.findall(r"test_sev_status_msr\[([^\]]+)\]", out))
    assert shells == {f"{k}-{t}" for k in ("plain", "sev", "sev-es", "sev-snp") for t in ("serial", "ssh")}


def _host_has_sev() -> bool:
    from sevkit.host import probe
    return bool(probe().features.get("SEV"))


def test_unrunnable_kinds_skip_with_evidence(tmp_path: Path) -> None:
    if _host_has_sev():
        return   # a SEV host boots them; this self-test is about the skip path
    r = _suite("-k", "sev and not plain", "-rs", "-q", tmp=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "failed" not in r.stdout
    assert re.search(r"SKIPPED .*sev-snp guest cannot run on this host: .*sev-snp-guest", r.stdout)
    assert re.search(r"SKIPPED .*sev guest cannot run on this host: .+", r.stdout)


def test_expected_feature_fails_instead_of_skipping(tmp_path: Path) -> None:
    if _host_has_sev():
        return
    r = _suite("-k", "test_query_sev and not plain", "--sev-expect", "sev", "-q", "-rfs", tmp=tmp_path)
    assert r.returncode == 1, r.stdout[-2000:]
    assert re.search(r"FAILED .*test_query_sev\[sev\]", r.stdout), r.stdout[-2000:]
    assert "--sev-expect sev requires SEV: sev guest cannot run on this host" in r.stdout
    assert re.search(r"SKIPPED .*sev-es guest cannot run", r.stdout)   # not demanded by the 'sev' profile
