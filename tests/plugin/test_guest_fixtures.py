"""The guest fixtures as the suite sees them, run in a subprocess from the repository root
(so the suite's conftest and options load). No guest is booted: only the kinds this host
cannot run are selected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

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


def test_kernel_log_check_runs_last_in_the_session(tmp_path: Path) -> None:
    """The guest kernel-log items come after every other suite's items (memory, attestation use the
    same guests), in their own order."""
    r = subprocess.run([sys.executable, "-m", "pytest", "suites", "--collect-only", "-q", "-p", "no:cacheprovider",
                        f"--sev-report-dir={tmp_path}"], cwd=REPO, capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    ids = [line for line in r.stdout.splitlines() if "::" in line]
    zz = [i for i, line in enumerate(ids) if "test_guest_zz_kernel_log.py" in line]
    assert len(zz) == 4 and zz == list(range(len(ids) - 4, len(ids))), ids[-8:]
    assert [ids[i].rsplit("[", 1)[1] for i in zz] == ["plain]", "sev]", "sev-es]", "sev-snp]"]
    assert any(line.startswith("suites/memory/") for line in ids[: zz[0]]), "no memory suite items collected"


def _host_has_sev() -> bool:
    from sevkit.host import probe
    return bool(probe().features.get("SEV"))


def test_unrunnable_kinds_skip_with_evidence(tmp_path: Path) -> None:
    if _host_has_sev():
        pytest.skip("this host has SEV: the SEV kinds boot here, so the skip path cannot be exercised")
    r = _suite("-k", "sev and not plain", "-rs", "-q", tmp=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "failed" not in r.stdout
    assert re.search(r"SKIPPED .*sev-snp guest cannot run on this host: .*sev-snp-guest", r.stdout)
    assert re.search(r"SKIPPED .*sev guest cannot run on this host: .+", r.stdout)


def test_expected_feature_fails_instead_of_skipping(tmp_path: Path) -> None:
    if _host_has_sev():
        pytest.skip("this host has SEV: --sev-expect sev is met, so the missing-feature failure cannot be shown")
    r = _suite("-k", "test_query_sev and not plain", "--sev-expect", "sev", "-q", "-rfs", tmp=tmp_path)
    assert r.returncode == 1, r.stdout[-2000:]
    assert re.search(r"FAILED .*test_query_sev\[sev\]", r.stdout), r.stdout[-2000:]
    assert "--sev-expect sev requires SEV: sev guest cannot run on this host" in r.stdout
    assert re.search(r"SKIPPED .*sev-es guest cannot run", r.stdout)   # not demanded by the 'sev' profile


# -- a check that cannot measure skips with its evidence (no guest is booted) --------------------


def _encryption_suite() -> Any:
    import importlib.util
    path = REPO / "suites" / "guest" / "test_guest_encryption.py"
    spec = importlib.util.spec_from_file_location("sevkit_suite_guest_encryption", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_unreadable_sev_status_skips_instead_of_passing(tmp_path: Path) -> None:
    from sevkit.evidence import ArtifactDir
    suite = _encryption_suite()
    probe = SimpleNamespace(sev_status=None, msr_error="rdmsr: CPU 0 cannot read MSR 0xc0010131",
                            cpuid_eax_sev_bits=0)
    plain = SimpleNamespace(spec=SimpleNamespace(kind="plain"))
    with pytest.raises(pytest.skip.Exception) as info:
        suite.test_sev_status_msr(plain, probe, ArtifactDir(tmp_path / "plain"))
    reason = str(info.value)
    assert "cannot read MSR 0xc0010131" in reason and "CPUID Fn8000_001F EAX SEV bits = 0" in reason
    assert "no measurement" in (tmp_path / "plain" / "verdict.txt").read_text()
    # an SEV guest that cannot read it is broken: a failure, never a skip
    with pytest.raises(AssertionError, match="sev guest cannot read SEV_STATUS"):
        suite.test_sev_status_msr(SimpleNamespace(spec=SimpleNamespace(kind="sev")), probe,
                                  ArtifactDir(tmp_path / "sev"))
    # a measured value is still judged
    measured = SimpleNamespace(sev_status=0x1, status_low3=0x1, msr_error=None, cpuid_eax_sev_bits=0)
    with pytest.raises(AssertionError, match="bits 0-2 are 0b001"):
        suite.test_sev_status_msr(plain, measured, ArtifactDir(tmp_path / "measured"))
