"""A named check with its observed value: the unit of every attestation verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["pass", "fail", "info"]


@dataclass(frozen=True, slots=True)
class Check:
    """``info`` checks are reported but do not decide the verdict (e.g. not applicable to a VLEK)."""

    name: str
    status: Status
    observed: str
    expected: str = ""
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        exp = f" (expected {self.expected})" if self.expected else ""
        det = f": {self.detail}" if self.detail else ""
        return f"{self.status.upper():4} {self.name}: {self.observed}{exp}{det}"


def compare(name: str, observed: str, expected: str, *, detail: str = "") -> Check:
    return Check(name, "pass" if observed == expected else "fail", observed, expected, detail)


def judge(name: str, ok: bool, observed: str, expected: str = "", detail: str = "") -> Check:
    return Check(name, "pass" if ok else "fail", observed, expected, detail)
