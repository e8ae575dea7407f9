"""The Allure command line (npm allure-commandline on Debian's Java) turns a run's allure-results into a
report with sevkit's categories (product defects vs infrastructure problems) and the evidence attached.

The run is a SYNTHETIC three-test suite under the real fixtures/ plugins (like tests/plugin), so the
allure-results are what a lab's run writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALLURE = shutil.which("allure")

pytestmark = pytest.mark.skipif(ALLURE is None, reason="allure not installed (scripts/host-deps.sh: npm install -g "
                                                       "allure-commandline, Java from Debian)")

CATALOG = "".join(f'[[level]]\nid = "{p}"\nn = {n}\ntitle = "{p}"\nprofile = "{p}"\n'
                  for n, p in enumerate(("none", "sev", "sev-es", "sev-snp"), 1)) + "".join(
    f'[[requirement]]\nid = "T-00{i}"\ntitle = "synthetic {t}"\nlevel = "none"\nstrength = "MUST"\n'
    f'source = "synthetic"\napplies = "always"\nhint = "h"\ntests = ["{t}"]\n'
    for i, t in enumerate(("test_ok", "test_defect", "test_broken"), 1))

BODY = '''
from sevkit.errors import LaunchError

def test_ok(artifacts):
    artifacts.write_text("run.sh", "#!/bin/sh\\n# SYNTHETIC replay\\n")

def test_defect(artifacts):
    artifacts.write_text("scan-summary.json", '{"hits": 3, "synthetic": true}')
    assert False, "secret found in guest memory (SYNTHETIC)"

def test_broken():
    raise LaunchError("QEMU did not start (SYNTHETIC)")
'''


def test_allure_generate_has_categories_and_attachments(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["fixtures.options", "fixtures.evidence", '
                                          '"fixtures.results"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (tmp_path / "test_case.py").write_text(BODY)
    (tmp_path / "catalog.toml").write_text(CATALOG)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "--sev-catalog", "catalog.toml"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode in (1, 2), run.stdout[-2000:]
    results = (tmp_path / "reports" / "latest" / "allure-results").resolve()
    out = tmp_path / "allure-report"
    gen = subprocess.run([str(ALLURE), "generate", str(results), "-o", str(out), "--clean"], capture_output=True,
                         text=True, timeout=300)
    assert gen.returncode == 0, gen.stdout[-2000:] + gen.stderr[-2000:]
    cats = json.loads((out / "widgets" / "categories.json").read_text())
    names = {c["name"].split(" (")[0]: c for c in cats["items"]}
    assert {"Product defects", "Infrastructure problems"} <= set(names), cats
    cases = [json.loads(p.read_text()) for p in (out / "data" / "test-cases").glob("*.json")]
    defect = next(c for c in cases if c["name"] == "test_defect")
    assert defect["status"] == "failed"
    assert {"name": "req", "value": "T-002"} in defect["labels"]
    attached = [a for step in [defect.get("testStage", {})] for a in step.get("attachments", [])]
    assert any(a["name"].endswith("scan-summary.json") for a in attached), attached
    source = out / "data" / "attachments" / next(a["source"] for a in attached if a["name"].endswith(".json"))
    assert json.loads(source.read_text()) == {"hits": 3, "synthetic": True}
    broken = next(c for c in cases if c["name"] == "test_broken")
    assert broken["status"] == "broken"
