"""The requirements catalog (sevkit/data/requirements.toml): levels, requirements, test keys.

Loaded and validated once per run; a bad catalog is a ``CatalogError`` (one line, exit 2). The mapping
test -> requirement is by test key, ``function[parametrization id]``, so no test body names its requirement
and the host-check registry can map 1:1 through ``check``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import SevkitError
from ..vocab import FEATURES, Profile

STRENGTHS = ("MUST", "SHOULD", "IF-SUPPORTED")
_ID = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*-\d{3}$")
# capability:<rule> is decided while the test runs (fixtures/capabilities.py, sevkit.host.applicability): the
# test records its applicability with the deciding capabilities as evidence and skips when it does not apply.
_APPLIES = re.compile(r"^(always|feature:(?P<feature>[A-Z-]+)|check:(?P<check>[a-z0-9_.]+)"
                      r"|capability:(?P<rule>[a-z0-9_.-]+))$")


class CatalogError(SevkitError):
    """The requirements catalog is unusable (syntax, a missing field, a duplicate id or test)."""


@dataclass(frozen=True)
class Level:
    id: str
    n: int
    title: str
    description: str = ""
    profile: str | None = None

    @property
    def label(self) -> str:
        return f"level {self.n} ({self.title})"


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    level: str
    strength: str
    source: str
    applies: str
    hint: str
    tests: tuple[str, ...]
    check: str | None = None

    @property
    def capability(self) -> tuple[str, str] | None:
        """("feature", "SEV-SNP"), ("check", "kvm.secure_tsc") or ("capability", rule); None for "always"."""
        m = _APPLIES.match(self.applies)
        if m is None or self.applies == "always":
            return None
        kind = next(k for k in ("feature", "check", "rule") if m[k])
        return ("capability" if kind == "rule" else kind, m[kind])


@dataclass(frozen=True)
class Catalog:
    levels: tuple[Level, ...]
    requirements: tuple[Requirement, ...]
    source: str
    _by_test: dict[str, str]

    def level(self, level_id: str) -> Level:
        return next(lv for lv in self.levels if lv.id == level_id)

    def requirement(self, req_id: str) -> Requirement:
        return next(r for r in self.requirements if r.id == req_id)

    def for_test(self, key: str) -> Requirement | None:
        """The requirement a test key implements (None: a test the catalog does not know)."""
        rid = self._by_test.get(key)
        return self.requirement(rid) if rid else None

    def level_for_profile(self, profile: str) -> Level:
        return next(lv for lv in self.levels if lv.profile == profile)

    def test_keys(self) -> set[str]:
        return set(self._by_test)


def key_of(nodeid: str) -> str:
    """``suites/host/test_cpu.py::test_cpu_vendor`` -> ``test_cpu_vendor``; keeps ``[params]``."""
    return nodeid.rsplit("::", 1)[-1]


def default_path() -> Path:
    return Path(str(resources.files("sevkit") / "data" / "requirements.toml"))


def load(path: Path | None = None) -> Catalog:
    """Read and validate the catalog; every problem found is named in one CatalogError line."""
    path = path or default_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"requirements catalog {path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"requirements catalog {path}: not TOML: {exc}") from None
    problems: list[str] = []
    levels = _levels(data.get("level"), problems)
    reqs = _requirements(data.get("requirement"), {lv.id for lv in levels}, problems)
    by_test: dict[str, str] = {}
    for r in reqs:
        for t in r.tests:
            if t in by_test:
                problems.append(f"test {t!r} is in both {by_test[t]} and {r.id}")
            by_test[t] = r.id
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CatalogError(f"requirements catalog {path}: " + "; ".join(problems[:3]) + more)
    return Catalog(tuple(levels), tuple(reqs), str(path), by_test)


def _levels(raw: Any, problems: list[str]) -> list[Level]:
    if not isinstance(raw, list) or not raw:
        problems.append("no [[level]] tables")
        return []
    out: list[Level] = []
    for i, t in enumerate(raw, 1):
        if not isinstance(t, dict) or not all(isinstance(t.get(k), str) and t.get(k) for k in ("id", "title")):
            problems.append(f"level #{i}: needs id and title strings")
            continue
        if t.get("n") != i:
            problems.append(f"level {t['id']!r}: n must be {i} (levels are listed in order, from 1)")
        profile = t.get("profile")
        if profile is not None and profile not in tuple(Profile):
            problems.append(f"level {t['id']!r}: profile {profile!r} is not one of {', '.join(Profile)}")
        out.append(Level(t["id"], i, t["title"], str(t.get("description", "")), profile))
    missing = [p for p in Profile if p not in {lv.profile for lv in out}]
    if missing:
        problems.append(f"no level for profile(s) {', '.join(missing)}")
    return out


_FIELDS = ("id", "title", "level", "strength", "source", "applies", "hint")


def _requirements(raw: Any, level_ids: set[str], problems: list[str]) -> list[Requirement]:
    if not isinstance(raw, list) or not raw:
        problems.append("no [[requirement]] tables")
        return []
    out: list[Requirement] = []
    seen: set[str] = set()
    for i, t in enumerate(raw, 1):
        name = t.get("id", f"#{i}") if isinstance(t, dict) else f"#{i}"
        if not isinstance(t, dict):
            problems.append(f"requirement {name}: not a table")
            continue
        bad = [k for k in _FIELDS if not isinstance(t.get(k), str) or not t[k].strip()]
        unknown = sorted(set(t) - {*_FIELDS, "tests", "check"})
        tests = t.get("tests")
        if bad:
            problems.append(f"requirement {name}: missing or empty {', '.join(bad)}")
            continue
        if unknown:
            problems.append(f"requirement {name}: unknown field(s) {', '.join(unknown)}")
        if not isinstance(tests, list) or not tests or not all(isinstance(x, str) and x for x in tests):
            problems.append(f"requirement {name}: tests must be a non-empty list of test keys")
            continue
        if not _ID.match(t["id"]):
            problems.append(f"requirement id {t['id']!r} is not AREA-NNN (e.g. SNP-ATT-003)")
        if t["id"] in seen:
            problems.append(f"requirement id {t['id']} is used twice")
        seen.add(t["id"])
        if t["level"] not in level_ids:
            problems.append(f"requirement {name}: unknown level {t['level']!r}")
        if t["strength"] not in STRENGTHS:
            problems.append(f"requirement {name}: strength {t['strength']!r} is not one of {', '.join(STRENGTHS)}")
        m = _APPLIES.match(t["applies"])
        if m is None or (m["feature"] and m["feature"] not in FEATURES):
            problems.append(f"requirement {name}: applies {t['applies']!r} is not always, "
                            f"feature:<{'|'.join(FEATURES)}>, check:<host check id> or capability:<rule>")
        elif (t["strength"] == "IF-SUPPORTED") != (t["applies"] != "always"):
            problems.append(f"requirement {name}: IF-SUPPORTED needs a capability rule in applies, "
                            "and only IF-SUPPORTED may have one")
        check = t.get("check")
        if check is not None and not isinstance(check, str):
            problems.append(f"requirement {name}: check must be a host check id")
        out.append(Requirement(t["id"], t["title"].strip(), t["level"], t["strength"], t["source"], t["applies"],
                               t["hint"], tuple(tests), check))
    return out
