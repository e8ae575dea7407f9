"""The one registry of host checks, in the order they run.

Each check module declares its checks once (``Checks``: id, title, feature, gates, needs,
requirement reference, function); this module puts them together and validates the tree:
ids are unique and a check only needs checks that run before it. ``sevkit.host.grader`` runs
the registry; suites/host has exactly one test per entry (a self-test proves it).
"""

from __future__ import annotations

from . import checks_cpu, checks_platform, checks_stack
from .checkdef import CheckDef


def _validated(defs: tuple[CheckDef, ...]) -> tuple[CheckDef, ...]:
    seen: set[str] = set()
    for d in defs:
        if d.id in seen:
            raise ValueError(f"duplicate host check id {d.id}")
        missing = [n for n in d.meta.needs if n not in seen]
        if missing:
            raise ValueError(f"host check {d.id} needs {missing}, which are not declared before it")
        seen.add(d.id)
    return defs


CHECKS: tuple[CheckDef, ...] = _validated((*checks_cpu.CHECKS, *checks_platform.CHECKS, *checks_stack.CHECKS))
BY_ID: dict[str, CheckDef] = {d.id: d for d in CHECKS}


def ids() -> list[str]:
    return [d.id for d in CHECKS]
