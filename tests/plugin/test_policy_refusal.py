"""The negative policy launches (issue 9 §13), driven with a stand-in pool (no QEMU is started).

SEV-SNP: a documented refusal (SNP ABI 56860 SNP_LAUNCH_START, POLICY_FAILURE for ABI_MAJOR/MINOR above
the firmware's) is judged: refused => pass, launched => FAILED. SEV/SEV-ES: no source documents a
LAUNCH_START refusal of the legacy policy's API version bits (a migration restriction), so whatever
happens is recorded and the test skips with it: never a pass.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sevkit.errors import LaunchError, LaunchRefused
from sevkit.evidence import ArtifactDir

REPO = Path(__file__).resolve().parents[2]


def _suite() -> Any:
    path = REPO / "suites" / "guest" / "test_guest_launch.py"
    spec = importlib.util.spec_from_file_location("sevkit_suite_guest_launch", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _VM:
    def __init__(self, error: BaseException | None) -> None:
        self.error, self.stopped = error, False

    def launch(self) -> None:
        if self.error is not None:
            raise self.error

    def shutdown(self, grace: float = 0) -> None:
        self.stopped = True


def _pool(error: BaseException | None) -> Any:
    vm = _VM(error)
    seen: dict[str, Any] = {}

    def spec(kind: str, **kw: Any) -> Any:
        seen.update(kind=kind, **kw)
        return SimpleNamespace(kind=kind, **kw)
    return SimpleNamespace(require=lambda kind: None, spec=spec, new_vm=lambda s, name: vm, vm=vm, seen=seen)


REFUSAL = LaunchError("qemu-system-x86_64: sev_snp_launch_start: SNP_LAUNCH_START ret=-5 fw_error=7 'Policy is "
                      "not allowed'")   # SYNTHETIC message in the shape QEMU's target/i386/sev.c reports


def test_snp_refusal_passes_and_launch_fails(tmp_path: Path) -> None:
    mod = _suite()
    pool = _pool(REFUSAL)
    mod.test_unsatisfiable_policy_refused(pool, ArtifactDir(tmp_path / "a"))
    assert pool.seen["kind"] == "sev-snp" and pool.seen["policy"] == 0x3FFFF and pool.vm.stopped
    assert "SNP_LAUNCH_START" in (tmp_path / "a" / "refusal.txt").read_text()
    with pytest.raises(pytest.fail.Exception, match="accepted a policy it cannot satisfy"):
        mod.test_unsatisfiable_policy_refused(_pool(None), ArtifactDir(tmp_path / "b"))
    with pytest.raises(pytest.fail.Exception, match="firmware was never asked"):
        mod.test_unsatisfiable_policy_refused(_pool(LaunchRefused("no SNP here")), ArtifactDir(tmp_path / "c"))


@pytest.mark.parametrize("kind", ["sev", "sev-es"])
@pytest.mark.parametrize("error", [None, LaunchError("SEV: LAUNCH_START ret=-5 fw_error=7")],
                         ids=["launched", "refused"])
def test_legacy_policy_outcome_is_recorded_without_verdict(tmp_path: Path, kind: str,
                                                           error: BaseException | None) -> None:
    mod = _suite()
    pool = _pool(error)
    with pytest.raises(pytest.skip.Exception, match="informational") as exc:
        mod.test_legacy_policy_api_bits_recorded(kind, pool, ArtifactDir(tmp_path))
    assert ("refused" if error else "launched") in str(exc.value)
    rec = json.loads((tmp_path / "legacy-policy-outcome.json").read_text())
    assert rec["verdict"] is None and rec["kind"] == kind and rec["policy"] == f"{pool.seen['policy']:#x}"
    assert pool.seen["policy"] >> 16 == 0xFFFF and pool.vm.stopped
