"""``--match k=v[,k=v...]``: which labgrid places a fleet run takes.

Each ``--match`` is one selector; all its pairs must equal the place's tags (``name=`` matches
the place name, as in labgrid's own reservation filters). A place is taken when any selector
matches, so ``--match gen=genoa --match gen=turin`` takes both generations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..errors import UsageError

# labgrid's own tag key syntax (labgrid/remote/common.py TAG_KEY)
TAG_KEY = re.compile(r"[a-z][a-z0-9_]+")

Selector = dict[str, str]


def parse_selector(text: str) -> Selector:
    sel: Selector = {}
    for pair in text.split(","):
        key, eq, value = pair.strip().partition("=")
        if not eq or not key or not value:
            raise UsageError(f"--match {text!r}: expected k=v[,k=v...] (labgrid place tags)")
        if key != "name" and not TAG_KEY.fullmatch(key):
            raise UsageError(f"--match {text!r}: tag key {key!r} is not a labgrid tag key ([a-z][a-z0-9_]+)")
        sel[key] = value
    return sel


def matches(name: str, tags: Mapping[str, str], selectors: Iterable[Selector]) -> bool:
    have = {**tags, "name": name}
    return any(all(have.get(k) == v for k, v in sel.items()) for sel in selectors)


def describe(selectors: Iterable[Selector]) -> list[str]:
    return [",".join(f"{k}={v}" for k, v in sorted(sel.items())) for sel in selectors]
