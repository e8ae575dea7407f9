"""The one place the host probe uses the ``sevkit analyze`` dmesg parser (owned by sevkit.logs).

Kept small on purpose: if the parser's names change, only this adapter changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DmesgFacts:
    features: dict[str, bool | None] = field(default_factory=dict)
    firmware: dict[str, Any] = field(default_factory=dict)
    asid_counts: dict[str, int] = field(default_factory=dict)
    asid_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    rmp_range: tuple[int, int] | None = None
    iommu_snp: bool | None = None
    evidence_lines: list[str] = field(default_factory=list)


class ParserUnavailable(Exception):
    """sevkit.logs.dmesg is not importable (not landed, or broken)."""


def host_dmesg_facts(text: str) -> DmesgFacts:
    try:
        from ..logs.dmesg import parse_host_dmesg
    except ImportError as exc:
        raise ParserUnavailable(f"dmesg parser sevkit.logs.dmesg not available: {exc}") from exc
    p: Any = parse_host_dmesg(text)
    ranges = {str(k): (int(v[0]), int(v[1])) for k, v in dict(getattr(p, "asid_ranges", {}) or {}).items()}
    rmp = getattr(p, "rmp_range", None)
    lines = getattr(p, "evidence_lines", None) or getattr(p, "evidence", None) or []
    return DmesgFacts(
        features=dict(getattr(p, "features", {}) or {}),
        firmware=dict(getattr(p, "firmware", {}) or {}),
        asid_counts={str(k): int(v) for k, v in dict(getattr(p, "asid_counts", {}) or {}).items()},
        asid_ranges=ranges,
        errors=[str(e) for e in (getattr(p, "errors", []) or [])],
        rmp_range=(int(rmp[0]), int(rmp[1])) if rmp else None,
        iommu_snp=getattr(p, "iommu_snp", None),
        evidence_lines=[str(x) for x in lines],
    )
