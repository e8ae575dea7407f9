"""MemoryProbe: plant a secret in one guest, read the guest's memory from the host, hand back the scan.

The strategy of the memory-confidentiality suite, in the library so it is tested without pytest:
plant through the guest's SSH transport when it has one (else its serial console, both through
GuestVM.run, so a dying guest is GuestDied), pick the dump method (``auto``: the cheapest one that
covers all guest RAM), scan for the needles, stop the planter on every path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DumpError
from ..qemu.machine import GuestVM
from ..qemu.qmp import Qmp
from ..results import Shell
from . import dump as D
from .gmem import private_memory_view
from .pages import mark_moved, moved, not_examined, require_pages
from .plant import Planted, Secret, plant, relocate, unplant
from .registers import RegisterView, read_registers

PLANT_TIMEOUT = 120.0


@dataclass
class MemoryProbe:
    """Plant, read and judge one guest's memory."""

    vm: GuestVM
    scratch: Path
    keep: bool
    per_gib: float

    @property
    def kind(self) -> str:
        return str(self.vm.spec.kind)

    @property
    def ram_bytes(self) -> int:
        return int(self.vm.spec.memory_mib) << 20

    def _shell(self) -> Shell:
        return self.vm.shell("ssh" if self.vm.has_ssh else "serial")

    def _pid(self) -> int:
        pid = self.vm.pid
        if pid is None:
            raise DumpError(f"{self.vm.name}: QEMU is not running")
        return int(pid)

    def _qmp(self) -> Qmp:
        if self.vm.qmp is None:
            raise DumpError(f"{self.vm.name}: QEMU's monitor is not connected")
        return self.vm.qmp

    def plant(self, secret: Secret) -> Planted:
        return plant(self._shell(), secret, timeout=PLANT_TIMEOUT)

    def unplant(self, planted: Planted) -> None:
        unplant(self._shell(), planted)

    def method(self, requested: str) -> str:
        if requested == "auto":
            return D.default_method(self._pid(), self.ram_bytes, str(self.vm.spec.machine))
        return requested

    def scan(self, method: str, needles: list[bytes], pages: dict[int, str] | None = None) -> D.MemoryScan:
        # guest_memfd is decided from the QEMU process's descriptors, not from a kernel version
        readable, why = private_memory_view(self.kind, self._pid())
        folder = self.scratch / f"{self.kind}-{method}"
        return D.acquire_and_scan(self.method(method), qmp=self._qmp(), pid=self._pid(), ram_bytes=self.ram_bytes,
                                  needles=needles, folder=folder, machine=str(self.vm.spec.machine),
                                  keep=self.keep, per_gib=self.per_gib, private_readable=readable,
                                  private_reason=why, pages=pages)

    def registers(self) -> RegisterView:
        return read_registers(self._qmp())

    def plant_and_scan(self, method: str) -> tuple[Planted, D.MemoryScan]:
        """A fresh secret, planted, read back through ``method`` (all of RAM); then the exact pages that
        hold its copies are examined in every method's view, and pages that moved meanwhile are marked
        not examined. The planter is stopped after."""
        secret = Secret.fresh()
        planted = self.plant(secret)
        try:
            pages = planted.pages
            require_pages(pages)
            ms = self.scan(method, [secret.needle, secret.control], pages)
            for other in D.METHODS:
                if other not in ms.page_views:
                    try:
                        ms.page_views[other] = D.examine_pages(
                            other, qmp=self._qmp(), pid=self._pid(), ram_bytes=self.ram_bytes, pages=pages,
                            needle=secret.needle, folder=self.scratch / f"{self.kind}-pages",
                            machine=str(self.vm.spec.machine), per_gib=self.per_gib)
                    except DumpError as exc:   # e.g. QEMU refuses this dump for this guest: reported as such
                        ms.page_views[other] = not_examined(pages, other, f"{other} gave no view: {exc}")
            anon, tmpfs = relocate(self._shell(), planted)
            gone = moved(pages, planted.anon_gpas + planted.tmpfs_gpas, anon + tmpfs)
            ms.page_views = {m: mark_moved(v, gone) for m, v in ms.page_views.items()}
        finally:
            self.unplant(planted)
        return planted, ms


def summary(planted: Planted, ms: D.MemoryScan, **extra: Any) -> dict[str, Any]:
    """The evidence for one scan: counts, gpas, coverage, entropy, timings; the needles only
    as SHA-256 digests (the seed and the secret never reach reports)."""
    s = planted.secret
    return {"planted": planted.to_json(), "scan": ms.to_json(),
            "needle_hits": ms.count(s.needle), "control_hits": ms.count(s.control),
            "needle_gpas": [f"{h.gpa:#x}" for h in ms.hits(s.needle) if h.gpa is not None][:50],
            "control_needle_sha256": hashlib.sha256(s.control).hexdigest(),
            # the guest-physical pages that hold the secret, and what each method saw at each of them
            "secret_pages": {m: [v.to_json() for v in vs] for m, vs in sorted(ms.page_views.items())}, **extra}
