"""Can the host read a guest's vCPU registers? (HMP ``info registers`` through QMP.)

A plain guest and an SEV guest (no ES) expose live state: RIP inside the kernel, CR3 pointing
at a page table, CR0.PG set. SEV-ES and SEV-SNP keep the register state in the encrypted VMSA,
so what QEMU shows is not the running guest's state (zeros, the reset state or a stale copy)
or the command fails (sev-facts §8.7, [D]).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import SevkitError
from .dump import QmpLike

_REG = re.compile(r"\b(RIP|RSP|RAX|CR0|CR3|CR4|EFER)=([0-9a-fA-F]+)")
CR0_PG = 1 << 31


@dataclass
class RegisterView:
    samples: list[dict[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """Registers look like a running, paged guest: paging on, CR3 and RIP non-zero,
        and not frozen at the x86 reset vector."""
        good = [s for s in self.samples
                if s.get("CR0", 0) & CR0_PG and s.get("CR3", 0) and s.get("RIP", 0) not in (0, 0xFFF0)]
        return bool(good) and len(good) == len(self.samples)

    @property
    def changing(self) -> bool:
        keys = ("RIP", "RSP", "RAX")
        return len({tuple(s.get(k) for k in keys) for s in self.samples}) > 1

    def to_json(self) -> dict[str, Any]:
        return {"samples": [{k: f"{v:#x}" for k, v in s.items()} for s in self.samples],
                "errors": self.errors, "live_state_visible": self.live, "changing_between_samples": self.changing}


def parse_registers(text: str) -> dict[str, int]:
    """The first vCPU's registers from ``info registers`` text (64-bit names)."""
    out: dict[str, int] = {}
    for name, value in _REG.findall(text):
        out.setdefault(name, int(value, 16))
    return out


def read_registers(qmp: QmpLike, samples: int = 3, interval: float = 0.2) -> RegisterView:
    view = RegisterView()
    for i in range(samples):
        try:
            text = str(qmp.execute("human-monitor-command", {"command-line": "info registers"}, timeout=10.0))
        except SevkitError as exc:
            view.errors.append(str(exc))
            continue
        regs = parse_registers(text)
        if regs:
            view.samples.append(regs)
        else:
            view.errors.append(f"no registers in the answer: {text.strip()[:200]!r}")
        if i + 1 < samples:
            time.sleep(interval)
    return view
