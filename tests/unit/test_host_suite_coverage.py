"""Every probe check has exactly one test in suites/host, and every such test names a real check."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from hostraw import make_raw

from sevkit.host import grade

SUITE = Path(__file__).resolve().parents[2] / "suites" / "host"


def test_one_suite_test_per_check() -> None:
    used = Counter(m for p in SUITE.glob("test_*.py") for m in re.findall(r'host_check\("([^"]+)"\)', p.read_text()))
    ids = grade(make_raw()).ids()
    assert sorted(used) == sorted(ids)
    assert all(n == 1 for n in used.values()), [k for k, n in used.items() if n != 1]


def test_every_suite_test_has_a_docstring_with_a_reference() -> None:
    for p in SUITE.glob("test_*.py"):
        for m in re.finditer(r'def (test_\w+)\(.*?\) -> None:\n    """(.*?)"""', p.read_text(), re.S):
            assert "Ref:" in m.group(2), (p.name, m.group(1))
