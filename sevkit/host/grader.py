"""Grade RawInputs into a HostReport: a pure function, so local, SSH and bundle probes agree.

Checks form a tree like ``snphost ok``: a check runs only when every check it ``needs`` passed
(or warned); otherwise it is a ``skip`` whose message carries the root cause's evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .rawinputs import RawInputs, Unreadable
from .report import FEATURES, Check, Evidence, HostReport


@dataclass
class Outcome:
    status: str
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    hint: str | None = None


def ev(source: str, value: Any) -> Evidence:
    return Evidence(source, value)


@dataclass(frozen=True)
class Meta:
    id: str
    title: str
    feature: str | None
    gates: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    ref: str = ""


class Grader:
    """Runs check functions in order, honouring ``needs`` and turning Unreadable into errors."""

    def __init__(self, raw: RawInputs) -> None:
        self.raw = raw
        self.checks: dict[str, Check] = {}
        self.facts: dict[str, Any] = {}   # decoded values shared between checks

    def add(self, meta: Meta, fn: Callable[[], Outcome]) -> Check:
        if meta.id in self.checks:
            raise ValueError(f"duplicate check id {meta.id}")
        parent = meta.needs[0] if meta.needs else None
        blocked = next((self.checks[n] for n in meta.needs if not self.checks[n].ok), None)
        if blocked is not None:
            root = self.checks[blocked.cause] if blocked.status == "skip" and blocked.cause else blocked
            check = Check(meta.id, meta.title, "skip",
                          f"{root.message} [{root.id} {root.status}]",
                          evidence=root.evidence,
                          hint=f"not applicable until {root.id} passes" + (f": {root.hint}" if root.hint else ""),
                          feature=meta.feature, gates=meta.gates, parent=parent, ref=meta.ref, cause=root.id)
        else:
            try:
                o = fn()
            except Unreadable as exc:
                o = Outcome("error", exc.message, [ev(exc.source, exc.detail)], exc.hint)
            check = Check(meta.id, meta.title, o.status, o.message, tuple(o.evidence),
                          o.hint if o.status != "pass" else None, meta.feature, meta.gates, parent, meta.ref)
        self.checks[meta.id] = check
        return check

    def ok(self, check_id: str) -> bool:
        c = self.checks.get(check_id)
        return c is not None and c.ok


def features_of(checks: Sequence[Check]) -> dict[str, bool | None]:
    """A feature is usable when every check gating it passed or warned; None if one errored."""
    out: dict[str, bool | None] = {}
    chain = {"SME": ("SME",), "SEV": ("SEV",), "SEV-ES": ("SEV", "SEV-ES"),
             "SEV-SNP": ("SEV", "SEV-ES", "SEV-SNP")}
    for f in FEATURES:
        gating = [c for c in checks if any(g in c.gates for g in chain[f])]
        if any(c.status in ("fail", "skip") and not _skip_from_error(c, checks) for c in gating):
            out[f] = False
        elif any(c.status == "error" or _skip_from_error(c, checks) for c in gating):
            out[f] = None
        else:
            out[f] = bool(gating)
    return out


def _skip_from_error(c: Check, checks: Sequence[Check]) -> bool:
    """A skip caused by a check that could not read its input: the feature is unknown, not off."""
    if c.status != "skip" or not c.cause:
        return False
    return any(x.id == c.cause and x.status == "error" for x in checks)


def grade(raw: RawInputs) -> HostReport:
    """RawInputs -> HostReport. Pure: the same inputs always give the same report."""
    from . import checks_cpu, checks_platform, checks_stack
    from .identity import identity, qemu_info

    g = Grader(raw)
    checks_cpu.run(g)
    checks_platform.run(g)
    checks_stack.run(g)
    checks = tuple(g.checks.values())
    me = g.facts.get("mem_encrypt")
    return HostReport(
        checks=checks,
        features=features_of(checks),
        identity=identity(raw, g.facts),
        qemu=qemu_info(raw),
        cbitpos=me.cbitpos if me is not None and g.ok("cpuid.sev") else None,
        reduced_phys_bits=me.phys_addr_reduction if me is not None and g.ok("cpuid.sev") else None,
        ovmf_images=tuple(g.facts.get("ovmf_images", ())),
        meta={"origin": raw.origin, "collected_at": raw.data.get("collected_at"),
              "hostname": raw.data.get("collector", {}).get("hostname"),
              "euid": raw.euid, "collect_seconds": raw.data.get("collector", {}).get("seconds")},
    )
