"""The requirements catalog: it loads, it is validated, and it maps one to one onto the suite's tests.

The mapping is checked against what pytest really collects (`pytest --collect-only` in a subprocess, the
suite's own conftest and options), so parametrization ids count, not what a regex finds in the sources.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers.hostraw import make_raw

from sevkit.host import grade
from sevkit.report.catalog import STRENGTHS, CatalogError, default_path, key_of, load
from sevkit.vocab import Profile

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every test key of the conformance suite, as pytest collects it with the default options."""
    out = tmp_path_factory.mktemp("collect")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist",
                           "--sev-report-dir", str(out), "suites"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = [ln.strip() for ln in proc.stdout.splitlines() if "::" in ln and ln.startswith("suites/")]
    assert len(ids) > 100, proc.stdout[-2000:]
    return ids


def test_catalog_loads_with_levels_for_every_profile() -> None:
    cat = load()
    assert [lv.n for lv in cat.levels] == list(range(1, len(cat.levels) + 1))
    assert {lv.profile for lv in cat.levels if lv.profile} == set(Profile)
    assert [cat.level_for_profile(p).n for p in ("none", "sev", "sev-es", "sev-snp")] == [1, 2, 3, 4]
    assert {lv.id for lv in cat.levels} >= {"host-ready", "sev", "sev-es", "sev-snp", "memory", "attestation"}
    assert {r.strength for r in cat.requirements} <= set(STRENGTHS)


def test_every_collected_test_implements_exactly_one_requirement(collected: list[str]) -> None:
    cat = load()
    keys = [key_of(n) for n in collected]
    dup = [k for k, n in Counter(keys).items() if n > 1]
    assert dup == [], f"test keys must be unique across suites/ (rename the test): {dup}"
    unmapped = [n for n in collected if cat.for_test(key_of(n)) is None]
    assert unmapped == [], f"tests without a requirement (add them to sevkit/data/requirements.toml): {unmapped}"


def test_every_requirement_has_a_collected_test(collected: list[str]) -> None:
    cat = load()
    keys = {key_of(n) for n in collected}
    orphans = [r.id for r in cat.requirements if not any(t in keys for t in r.tests)]
    assert orphans == [], f"requirements no test implements: {orphans}"


def test_host_requirements_map_one_to_one_onto_host_checks() -> None:
    """Each host check id of the registry is exactly one requirement's ``check`` (and nothing else)."""
    cat = load()
    checks = Counter(r.check for r in cat.requirements if r.check)
    assert all(n == 1 for n in checks.values()), [c for c, n in checks.items() if n > 1]
    assert sorted(checks) == sorted(grade(make_raw()).ids())


def test_requirement_ids_and_fields_are_well_formed() -> None:
    cat = load()
    for r in cat.requirements:
        assert r.title and r.hint and r.source, r.id
        assert (r.strength == "IF-SUPPORTED") == (r.capability is not None), r.id


def _write(tmp_path: Path, text: str) -> Path:
    """A SYNTHETIC catalog: the real one with ``text`` appended (or replaced when it starts with '!')."""
    p = tmp_path / "catalog.toml"
    p.write_text(text[1:] if text.startswith("!") else default_path().read_text() + "\n" + text)
    return p


REQ = '[[requirement]]\nid = "{id}"\ntitle = "t"\nlevel = "{level}"\nstrength = "{strength}"\nsource = "s"\n' \
      'applies = "{applies}"\nhint = "h"\ntests = ["{test}"]\n'


@pytest.mark.parametrize(("extra", "message"), [
    (REQ.format(id="HOST-001", level="sev", strength="MUST", applies="always", test="test_x"), "used twice"),
    (REQ.format(id="NEW-001", level="gold", strength="MUST", applies="always", test="test_x"), "unknown level"),
    (REQ.format(id="NEW-001", level="sev", strength="MAY", applies="always", test="test_x"), "strength 'MAY'"),
    (REQ.format(id="NEW-001", level="sev", strength="IF-SUPPORTED", applies="always", test="test_x"),
     "IF-SUPPORTED needs a capability"),
    (REQ.format(id="NEW-001", level="sev", strength="MUST", applies="feature:TDX", test="test_x"), "applies"),
    (REQ.format(id="NEW-001", level="sev", strength="MUST", applies="always", test="test_cpu_vendor"),
     "is in both"),
    (REQ.format(id="new-1", level="sev", strength="MUST", applies="always", test="test_x"), "is not AREA-NNN"),
    ('[[requirement]]\nid = "NEW-002"\ntitle = "t"\n', "missing or empty"),
    ("!this is = = not toml", "not TOML"),
    ('![[level]]\nid = "a"\nn = 1\ntitle = "A"\nprofile = "none"\n', "no level for profile"),
])
def test_bad_catalog_is_one_clear_error(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(CatalogError) as exc:
        load(_write(tmp_path, extra))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_bad_catalog_stops_the_suite_with_one_line_exit_2(tmp_path: Path) -> None:
    bad = _write(tmp_path, REQ.format(id="HOST-001", level="sev", strength="MUST", applies="always", test="t"))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "--sev-catalog", str(bad),
                           "--sev-report-dir", str(tmp_path / "r"), "suites/host/test_kvm.py"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "sevkit: error: requirements catalog" in out and "HOST-001 is used twice" in out
    assert "Traceback" not in out
