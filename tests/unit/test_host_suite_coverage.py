"""suites/host is tied to the host-check registry: exactly one test per registered check and
no test for an unregistered one; each test is named after its check, its docstring repeats the
check's title, feature and requirement reference, and its body only hands the verdict over."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from helpers.hostraw import make_raw

from sevkit.host import grade
from sevkit.host.registry import BY_ID, ids

SUITE = Path(__file__).resolve().parents[2] / "suites" / "host"


def _suite_tests() -> list[tuple[str, ast.FunctionDef]]:
    out = []
    for p in sorted(SUITE.glob("test_*.py")):
        tree = ast.parse(p.read_text(), str(p))
        out += [(p.name, n) for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    return out


def _check_id(fn: ast.FunctionDef) -> str | None:
    """The id in the test's one statement ``host_check("<id>")`` (None if the body is anything else)."""
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Expr) or not isinstance(body[0].value, ast.Call):
        return None
    call = body[0].value
    if not (isinstance(call.func, ast.Name) and call.func.id == "host_check" and len(call.args) == 1
            and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
        return None
    return call.args[0].value


def test_one_suite_test_per_registered_check() -> None:
    tests = _suite_tests()
    used = Counter(_check_id(fn) for _, fn in tests)
    assert None not in used, [f"{f}::{fn.name}" for f, fn in tests if _check_id(fn) is None]
    assert sorted(used) == sorted(ids())
    assert all(n == 1 for n in used.values()), [k for k, n in used.items() if n != 1]
    assert ids() == grade(make_raw()).ids()    # the grader runs exactly the registry, in order


def test_each_test_is_named_and_documented_from_its_check() -> None:
    for file, fn in _suite_tests():
        cid = _check_id(fn)
        assert cid is not None
        meta = BY_ID[cid].meta
        assert fn.name == "test_" + cid.replace(".", "_"), (file, fn.name, cid)
        doc = ast.get_docstring(fn) or ""
        want = f"{meta.title} [{meta.feature or 'generic host'}].\n\nRef: {meta.ref}."
        assert doc == want, (file, fn.name, doc, want)
