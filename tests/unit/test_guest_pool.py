"""GuestPool: each kind booted once and shared; an early kernel panic under TCG is retried once
(under KVM never); a failed boot is remembered; blocked kinds raise GuestBlocked before anything
starts; measured-boot evidence lands beside the guest. Guests are fakes (no QEMU): the pool's
policy is what is tested, through its seams (planner, make_vm), without pytest fixtures.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers.hostraw import make_raw
from helpers.ovmf import craft_ovmf  # SYNTHETIC OVMF-like GUID table

from sevkit.attestation.measure import inspect_firmware
from sevkit.errors import GuestPanic, ImageError
from sevkit.evidence import ArtifactDir
from sevkit.guests import Blocker, GuestBlocked, GuestPlanner, GuestPool, GuestSettings, Plan
from sevkit.host import grade
from sevkit.image import GuestImage
from sevkit.qemu.caps import SevCapabilities
from sevkit.qemu.spec import GuestSpec
from sevkit.vocab import GuestKind


class FakeVM:
    """Stands in for GuestVM: same constructor, a scripted boot outcome."""

    outcomes: ClassVar[list[str]] = []
    made: ClassVar[list[FakeVM]] = []

    def __init__(self, spec: GuestSpec, *, evidence: ArtifactDir, run_root: Path, timeouts: Any, access: Any) -> None:
        self.spec, self.evidence, self.access = spec, evidence, access
        self.outcome = FakeVM.outcomes.pop(0)
        self.times: dict[str, float] = {}
        self.broken: Exception | None = None
        self.stopped = False
        FakeVM.made.append(self)

    def boot(self) -> None:
        self.evidence.write_text("console.log", f"boot: {self.outcome}\n")
        if self.outcome == "panic":
            raise GuestPanic("Kernel panic - not syncing: double fault")
        if self.outcome == "image":
            raise ImageError("cannot build the image")

    def shutdown(self, *, grace: float | None = None) -> None:
        self.stopped = True


class StaticPlanner:
    """Plans every kind with the same spec (accel as given), or blocks it."""

    def __init__(self, accel: str, blocked: tuple[str, ...] = ()) -> None:
        self.accel, self.blocked, self.calls = accel, blocked, 0

    def plan(self, kind: GuestKind | str) -> Plan:
        self.calls += 1
        k = GuestKind(kind)
        if k in self.blocked:
            return Plan(k, blockers=(Blocker("SYNTHETIC: no SEV here", {"check": "cpuid.sev"}),))
        return Plan(k, spec=GuestSpec(kind="plain", name=f"{k}-main", accel=self.accel, kernel=Path("/k")))


def make_pool(tmp_path: Path, accel: str, outcomes: list[str], blocked: tuple[str, ...] = ()) -> GuestPool:
    FakeVM.outcomes, FakeVM.made = list(outcomes), []
    return GuestPool(StaticPlanner(accel, blocked), run_root=tmp_path / "run",
                     evidence=lambda name: ArtifactDir(tmp_path / name), make_vm=FakeVM)


def test_tcg_panic_is_retried_once_and_first_console_kept(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, "tcg", ["panic", "ok"])
    vm = pool.get("plain")
    assert len(FakeVM.made) == 2 and vm is FakeVM.made[1]
    assert FakeVM.made[0].stopped and not vm.stopped          # the panicked first QEMU is stopped at once
    assert (tmp_path / "guest-plain-main" / "console.attempt1.log").read_text() == "boot: panic\n"
    assert (tmp_path / "guest-plain-main" / "console.log").read_text() == "boot: ok\n"
    assert pool.get("plain") is vm and len(FakeVM.made) == 2       # booted once, shared


def test_tcg_second_panic_is_raised_and_remembered(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, "tcg", ["panic", "panic"])
    with pytest.raises(GuestPanic):
        pool.get("plain")
    with pytest.raises(GuestPanic):  # remembered: no third boot
        pool.get("plain")
    assert len(FakeVM.made) == 2


def test_kvm_panic_is_a_finding_never_retried(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, "kvm", ["panic", "ok"])
    with pytest.raises(GuestPanic):
        pool.get("plain")
    assert len(FakeVM.made) == 1


def test_other_boot_errors_are_not_retried(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, "tcg", ["image", "ok"])
    with pytest.raises(ImageError):
        pool.get("plain")
    assert len(FakeVM.made) == 1


def test_blocked_kind_raises_before_anything_starts(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, "kvm", [], blocked=("sev",))
    with pytest.raises(GuestBlocked, match="SYNTHETIC: no SEV here") as info:
        pool.get("sev")
    assert info.value.plan.kind is GuestKind.SEV and FakeVM.made == []
    with pytest.raises(GuestBlocked):
        pool.spec("sev", policy=1)
    assert isinstance(pool.planner, StaticPlanner) and pool.planner.calls == 1   # planned once


def test_close_stops_every_guest(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, "tcg", ["ok"])
    vm = pool.get("plain")
    assert pool.close() == [] and vm.stopped                        # type: ignore[attr-defined]


# -- SNP measured direct boot: the plan decides kernel-hashes, the pool records why ----------------
def snp_pool(tmp_path: Path, ovmf: Path, *, kernel: bool = True, probed: bool = False) -> GuestPool:
    (tmp_path / "vmlinuz").write_bytes(b"SYNTHETIC kernel")
    img = GuestImage(root=tmp_path, disk=tmp_path / "disk.qcow2",
                     kernel=tmp_path / "vmlinuz" if kernel else None,  # type: ignore[arg-type]
                     initrd=None, append="console=ttyS0" if kernel else "", credentials="none")  # type: ignore[arg-type]
    host = grade(make_raw(qemu_version="9.1.0"))
    if probed:   # the host probe saw exactly this file (its analysis, by the same parser)
        host = dataclasses.replace(host, ovmf_images=(inspect_firmware(ovmf),))
    planner = GuestPlanner(host, GuestSettings(accel="kvm", ovmf=str(ovmf)), image=lambda: img,
                           sev_caps=lambda b, t: SevCapabilities(51, 1, {}), devices_exist=lambda p: True)
    return GuestPool(planner, run_root=tmp_path, evidence=lambda n: ArtifactDir(tmp_path / "ev" / n))


def test_snp_launches_with_kernel_hashes_when_the_firmware_has_them(tmp_path: Path) -> None:
    fw = craft_ovmf(tmp_path / "OVMF.amdsev.fd")
    pool = snp_pool(tmp_path, fw, probed=True)
    spec = pool.spec("sev-snp")
    assert spec.kernel_hashes and spec.firmware.image == fw
    # a panic mid-test exits QEMU (-no-reboot) at once; the measured command line includes it
    assert spec.append == "console=ttyS0 panic=-1"
    assert pool.plan("sev-snp").measured_boot.source == "host probe"  # type: ignore[union-attr]
    vm = pool.new_vm(spec)
    rec = json.loads((vm.evidence.path / "measured-boot.json").read_text())
    assert rec["kernel_hashes"] is True and rec["launched_with_kernel_hashes"] is True
    assert pool.spec("sev-snp", kernel_hashes=False).kernel_hashes is False   # negative tests may override


def test_snp_launches_without_kernel_hashes_and_records_why(tmp_path: Path) -> None:
    debian = Path("/usr/share/ovmf/OVMF.fd")     # real Debian 12 combined OVMF: SNP, no kernel hashes
    assert debian.is_file(), "install Debian's ovmf package (scripts/host-deps.sh)"
    for fw in (debian, craft_ovmf(tmp_path / "nohash.fd", snp_kernel_hashes=False)):
        pool = snp_pool(tmp_path, fw)
        spec = pool.spec("sev-snp")
        assert not spec.kernel_hashes
        rec = json.loads((pool.new_vm(spec).evidence.path / "measured-boot.json").read_text())
        assert rec["kernel_hashes"] is False and "SNP_KERNEL_HASHES" in rec["why"]
        assert rec["firmware"] == str(fw) and rec["source"] == "parsed"
    pool = snp_pool(tmp_path, craft_ovmf(tmp_path / "ok.fd"), kernel=False)
    assert not pool.spec("sev-snp").kernel_hashes
    assert pool.spec("sev-snp").append == ""      # boots from disk: no kernel command line to extend
    assert "boots from disk" in pool.plan("sev-snp").measured_boot.why  # type: ignore[union-attr]
