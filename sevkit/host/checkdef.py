"""How a host check is declared, and what its function sees and returns.

A check module lists its checks once, in order, in a ``Checks`` collection: ``Meta`` (id,
title, feature, gates, needs, requirement reference) plus a function ``fn(ctx) -> Outcome``.
``sevkit.host.registry`` gathers the modules' collections into the one registry;
``sevkit.host.grader`` runs it. Check modules import only this module (never the grader), so
there is no import circle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..vocab import Feature
from .rawinputs import RawInputs
from .report import Check, Evidence


@dataclass
class Outcome:
    """What a check function found: status (pass, fail, warn, skip, error), message, evidence, hint."""

    status: str
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    hint: str | None = None


def ev(source: str, value: Any) -> Evidence:
    return Evidence(source, value)


@dataclass(frozen=True)
class Meta:
    """A check's declaration. ``needs[0]`` is its parent in the check tree; ``gates`` are the
    features it must pass (or warn) for; ``ref`` names the requirement it checks."""

    id: str
    title: str
    feature: Feature | None
    gates: tuple[Feature, ...] = ()
    needs: tuple[str, ...] = ()
    ref: str = ""
    chained: bool = True    # see report.Check.chained

    @property
    def parent(self) -> str | None:
        return self.needs[0] if self.needs else None


class Context:
    """What a check function sees: the raw inputs, facts decoded by earlier checks, and the
    results so far."""

    def __init__(self, raw: RawInputs) -> None:
        self.raw = raw
        self.facts: dict[str, Any] = {}
        self.results: dict[str, Check] = {}

    def ok(self, check_id: str) -> bool:
        c = self.results.get(check_id)
        return c is not None and c.ok


CheckFn = Callable[[Context], Outcome]


@dataclass(frozen=True)
class CheckDef:
    meta: Meta
    fn: CheckFn

    @property
    def id(self) -> str:
        return self.meta.id


class Checks:
    """One module's checks, in declaration order (a check may only need checks declared before it)."""

    def __init__(self) -> None:
        self._defs: list[CheckDef] = []

    def add(self, meta: Meta, fn: CheckFn) -> None:
        self._defs.append(CheckDef(meta, fn))

    def __iter__(self) -> Iterator[CheckDef]:
        return iter(self._defs)

    def __len__(self) -> int:
        return len(self._defs)
