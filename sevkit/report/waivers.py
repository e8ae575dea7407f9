"""A lab's waivers: a known failure of one requirement on matching hosts, with a reason, an owner and an
expiry date. A waived FAIL reports as WAIVED; an expired waiver is ignored and listed; a waiver never
applies to an ERROR (an unmeasured requirement is not a known failure).

File format (TOML)::

    [[waiver]]
    requirement = "SNP-HOST-007"
    host = "lab-epyc-*"                      # hostname glob, or a table of identity-field globs:
    # host = { dmi_product = "R6625", bios_version = "1.9.*" }
    reason = "BIOS 1.9 leaves SNP memory coverage off; vendor ticket 4711"
    owner = "jane@lab.example"
    expires = 2027-03-31
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError


class WaiverError(UsageError):
    """The waivers file is unusable (one line, exit 2)."""


@dataclass(frozen=True)
class Waiver:
    requirement: str
    host: tuple[tuple[str, str], ...]   # (identity field, glob)
    reason: str
    owner: str
    expires: dt.date

    def matches(self, identity: dict[str, Any]) -> bool:
        return all(fnmatch.fnmatchcase(str(identity.get(k, "")), pattern) for k, pattern in self.host)

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def to_json(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "host": dict(self.host), "reason": self.reason,
                "owner": self.owner, "expires": self.expires.isoformat()}


def load(path: Path, known_requirements: set[str] | None = None) -> tuple[Waiver, ...]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise WaiverError(f"waivers file {path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise WaiverError(f"waivers file {path}: not TOML: {exc}") from None
    rows = data.get("waiver", [])
    if not isinstance(rows, list):
        raise WaiverError(f"waivers file {path}: [[waiver]] must be an array of tables")
    out: list[Waiver] = []
    for i, t in enumerate(rows, 1):
        where = f"waivers file {path}: waiver #{i}"
        if not isinstance(t, dict):
            raise WaiverError(f"{where}: not a table")
        for key in ("requirement", "reason", "owner"):
            if not isinstance(t.get(key), str) or not t[key].strip():
                raise WaiverError(f"{where}: {key} must be a non-empty string")
        expires = t.get("expires")
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError:
                raise WaiverError(f"{where}: expires {expires!r} is not a date (YYYY-MM-DD)") from None
        if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
            raise WaiverError(f"{where}: expires must be a date (YYYY-MM-DD)")
        host = t.get("host", "*")
        if isinstance(host, str):
            pairs: tuple[tuple[str, str], ...] = (("hostname", host),)
        elif isinstance(host, dict) and host and all(isinstance(v, str) for v in host.values()):
            pairs = tuple(sorted((str(k), str(v)) for k, v in host.items()))
        else:
            raise WaiverError(f"{where}: host must be a hostname glob or a table of identity-field globs")
        if known_requirements is not None and t["requirement"] not in known_requirements:
            raise WaiverError(f"{where}: unknown requirement {t['requirement']!r}")
        out.append(Waiver(t["requirement"], pairs, t["reason"].strip(), t["owner"].strip(), expires))
    return tuple(out)


def find(waivers: tuple[Waiver, ...], requirement: str, identity: dict[str, Any],
         today: dt.date) -> tuple[Waiver | None, list[Waiver]]:
    """The valid waiver for ``requirement`` on this host (first match), and the expired ones that matched."""
    matching = [w for w in waivers if w.requirement == requirement and w.matches(identity)]
    valid = next((w for w in matching if not w.expired(today)), None)
    return valid, [w for w in matching if w.expired(today)]
