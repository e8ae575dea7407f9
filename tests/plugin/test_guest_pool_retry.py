"""GuestPool: an early kernel panic under TCG is retried once; under KVM it never is.

The guests here are fakes (no QEMU): what is tested is the pool's policy, not a boot.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fixtures.guest import GuestPool
from sevkit.errors import GuestPanic
from sevkit.evidence import ArtifactDir


class FakeVM:
    def __init__(self, folder: Path, outcomes: list[str]) -> None:
        self.evidence = ArtifactDir(folder)
        self.outcome = outcomes.pop(0)
        self.times: dict[str, float] = {}

    def boot(self) -> None:
        self.evidence.write_text("console.log", f"boot: {self.outcome}\n")
        if self.outcome == "panic":
            raise GuestPanic("Kernel panic - not syncing: double fault")


def make_pool(tmp_path: Path, accel: str, outcomes: list[str]) -> tuple[GuestPool, list[FakeVM]]:
    pool = GuestPool.__new__(GuestPool)
    pool._guests, pool._failed = {}, {}
    made: list[FakeVM] = []

    def new_vm(spec: Any, evidence_name: str | None = None) -> FakeVM:
        vm = FakeVM(tmp_path / "guest-plain", outcomes)
        made.append(vm)
        return vm

    pool.spec = lambda kind, **kw: SimpleNamespace(accel=accel, name=kind)  # type: ignore[method-assign]
    pool.new_vm = new_vm  # type: ignore[assignment]
    pool.require = lambda kind: None  # type: ignore[method-assign]
    return pool, made


def test_tcg_panic_is_retried_once_and_first_console_kept(tmp_path: Path) -> None:
    pool, made = make_pool(tmp_path, "tcg", ["panic", "ok"])
    vm = pool.get("plain")
    assert len(made) == 2 and vm is made[1]
    assert (tmp_path / "guest-plain" / "console.attempt1.log").read_text() == "boot: panic\n"
    assert (tmp_path / "guest-plain" / "console.log").read_text() == "boot: ok\n"


def test_tcg_second_panic_is_raised(tmp_path: Path) -> None:
    pool, made = make_pool(tmp_path, "tcg", ["panic", "panic"])
    with pytest.raises(GuestPanic):
        pool.get("plain")
    assert len(made) == 2
    with pytest.raises(GuestPanic):  # remembered: no third boot
        pool.get("plain")
    assert len(made) == 2


def test_kvm_panic_is_a_finding_never_retried(tmp_path: Path) -> None:
    pool, made = make_pool(tmp_path, "kvm", ["panic", "ok"])
    with pytest.raises(GuestPanic):
        pool.get("plain")
    assert len(made) == 1
