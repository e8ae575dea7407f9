"""GuestPool: boot each guest kind at most once (per session, or per xdist worker) and share it.

A kind whose plan has blockers raises GuestBlocked (the caller decides skip or fail); a boot that
failed is not retried: later ``get`` calls raise the same error at once. Under software emulation
(TCG) one early kernel panic is retried (see ``_boot``); under KVM a panic is a finding.

Seams for self-tests: ``planner`` (anything with ``plan(kind) -> Plan``) and ``make_vm`` (a factory
with GuestVM's constructor signature), so the policy is tested without QEMU.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..errors import GuestPanic, SevkitError
from ..evidence import ArtifactDir
from ..qemu import reaper
from ..qemu.machine import GuestVM
from ..qemu.spec import GuestSpec
from ..timeouts import DEFAULT, Timeouts
from ..vocab import GuestKind
from .plan import GuestBlocked, Plan

log = logging.getLogger("sevkit.guest")


def boot_with_tcg_retry(make: Callable[[], GuestVM], track: Callable[[GuestVM], None] | None = None) -> GuestVM:
    """``make()`` a guest and boot it. Under software emulation (TCG) an early kernel panic is retried once.

    QEMU 7.2's TCG has been seen to fault a guest kernel during early boot (a double fault at a cmpxchg16b
    with garbage EFLAGS; an int3 Oops while the kernel patches its text on 2 vCPUs), about 1 boot in tens.
    That is the emulator, not the system under test, so one retry is allowed there, with the first
    console kept as ``console.attempt1.log``. Under KVM a panic is a finding and is never retried.
    ``track`` sees each guest as soon as it exists (the pool stops it later on every path)."""
    vm = make()
    if track is not None:
        track(vm)
    try:
        vm.boot()
    except GuestPanic as exc:
        if vm.spec.accel != "tcg":
            raise
        log.warning("%s: guest panicked under TCG, retrying once: %s", vm.spec.name, exc)
        vm.shutdown(grace=0)
        first = vm.evidence.path / "console.log"
        if first.exists():
            first.rename(vm.evidence.path / "console.attempt1.log")
        vm = make()
        if track is not None:
            track(vm)
        vm.boot()
    return vm


class Planner(Protocol):
    def plan(self, kind: GuestKind | str) -> Plan: ...


class GuestPool:
    """The run's guests. ``evidence(name)`` gives each guest its evidence folder."""

    def __init__(self, planner: Planner, *, run_root: Path, evidence: Callable[[str], ArtifactDir],
                 timeouts: Timeouts = DEFAULT, make_vm: Callable[..., GuestVM] = GuestVM) -> None:
        self.planner = planner
        self.run_root = run_root
        self.evidence = evidence
        self.timeouts = timeouts
        self._make_vm = make_vm
        self._plans: dict[GuestKind, Plan] = {}
        self._guests: dict[GuestKind, GuestVM] = {}
        self._failed: dict[GuestKind, BaseException] = {}

    def plan(self, kind: GuestKind | str) -> Plan:
        """The kind's plan, made once (an error while planning is raised again on every call)."""
        k = GuestKind(kind)
        if k in self._failed:
            raise self._failed[k]
        if k not in self._plans:
            try:
                self._plans[k] = self.planner.plan(k)
            except BaseException as exc:
                self._failed[k] = exc
                raise
        return self._plans[k]

    def spec(self, kind: GuestKind | str, **overrides: Any) -> GuestSpec:
        """The GuestSpec this pool boots for ``kind`` (``overrides`` for negative tests).
        Raises GuestBlocked when the kind cannot run here."""
        plan = self.plan(kind)
        if plan.spec is None or plan.blockers:
            raise GuestBlocked(plan)
        return dataclasses.replace(plan.spec, **overrides) if overrides else plan.spec

    def new_vm(self, spec: GuestSpec, evidence_name: str | None = None) -> GuestVM:
        """A GuestVM (not launched) wired to this run's folders, timeouts and access."""
        plan = self.plan(spec.kind)
        ev = self.evidence(evidence_name or f"guest-{spec.name}")
        if plan.measured_boot is not None:
            ev.write_json("measured-boot.json", {**plan.measured_boot.to_dict(),
                                                 "launched_with_kernel_hashes": spec.kernel_hashes})
        return self._make_vm(spec, evidence=ev, run_root=self.run_root, timeouts=self.timeouts, access=plan.access)

    def get(self, kind: GuestKind | str) -> GuestVM:
        """The booted guest of ``kind`` (booted on first use). Raises GuestBlocked for a kind that
        cannot run here, or the original error again if this kind already failed to boot."""
        k = GuestKind(kind)
        self.spec(k)   # GuestBlocked before anything starts
        if k in self._failed:
            raise self._failed[k]
        vm = self._guests.get(k)
        if vm is not None:
            if vm.broken is not None:
                raise vm.broken
            return vm
        try:
            return self._boot(k)
        except BaseException as exc:
            self._guests.pop(k, None)
            self._failed[k] = exc
            raise

    def _boot(self, kind: GuestKind) -> GuestVM:
        """Boot ``kind`` (boot_with_tcg_retry: one retry of an early panic under TCG only)."""
        spec = self.spec(kind)

        def track(vm: GuestVM) -> None:
            self._guests[kind] = vm

        vm = boot_with_tcg_retry(lambda: self.new_vm(spec), track)
        log.info("%s booted: %s", kind, vm.times)
        return vm

    def booted(self) -> dict[str, GuestVM]:
        return {str(k): vm for k, vm in self._guests.items()}

    def close(self) -> list[int]:
        """Stop every guest; then kill whatever this run's pidfiles still name. Returns those pids."""
        for kind, vm in list(self._guests.items()):
            try:
                vm.shutdown()
            except SevkitError as exc:
                log.error("stopping %s: %s", kind, exc)
        self._guests.clear()
        leftovers = reaper.reap(self.run_root)
        if leftovers:
            log.error("killed leftover QEMU processes %s", leftovers)
        return leftovers
