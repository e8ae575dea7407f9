"""report.html in a real browser: Debian's headless Chromium over the DevTools protocol.

The page is rendered from a SYNTHETIC result.json built here with the real catalog and every outcome
(PASS, FAIL, NOT-APPLICABLE, SKIPPED, ERROR, WAIVED), evidence files included. At 1280 and 390 pixels wide:
every requirement of result.json is on the page with its outcome, nothing overflows sideways, the page
runs no script, and the only request is the file itself. Screenshots stay in the test's tmp folder
(``SEVKIT_SCREENSHOTS=DIR`` copies them there to look at).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.chromium_page import CHROMIUM, inspect_page

from sevkit.report import model, schema
from sevkit.report.catalog import load
from sevkit.report.render import write_html

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/host-deps.sh installs it)")


def _synthetic_result(run: Path) -> dict[str, Any]:
    cat = load()
    (run / "test_x").mkdir(parents=True)
    (run / "test_x" / "console.log").write_text("SYNTHETIC console\n")
    outcomes = ["passed", "failed", "skipped", "error"]
    records = []
    for i, r in enumerate(cat.requirements):
        rec = model.TestRecord(f"suites/x.py::{r.tests[0]}", r.tests[0], outcomes[i % 4], duration=0.25 * i,
                               message=f"SYNTHETIC reason {i} " + "long words " * (i % 7),
                               evidence_dirs=[str(run / "test_x")])
        rec.category = {"failed": "product", "error": "infrastructure"}.get(rec.outcome)
        if r.check == "kvm.secure_tsc":    # the capability is absent in the host below: NOT-APPLICABLE
            rec.outcome, rec.category = "skipped", None
        if i == 5:
            rec.outcome, rec.waiver = "failed", {"requirement": r.id, "host": {"hostname": "*"}, "reason": "ticket 1",
                                                 "owner": "lab", "expires": "2099-01-01"}
        records.append(rec)
    host = {"features": {"SEV-SNP": False}, "why_not": {}, "identity": {"hostname": "lab-epyc-07"},
            "checks": [{"id": "kvm.secure_tsc", "status": "skip", "message": "SecureTsc bit is 0", "evidence": []}]}
    collected = {r.tests[0] for r in cat.requirements}
    waiver = {"requirement": "SEV-HOST-001", "host": {"hostname": "lab-epyc-*", "bios_version": "1.9.*"},
              "reason": "SYNTHETIC vendor ticket 4711", "owner": "jane@lab.example", "expires": "2099-12-31"}
    waivers = {"file": str(run / "waivers.toml"), "applied": [waiver], "expired": [{**waiver, "expires": "2025-01-01"}],
               "unused": [waiver]}
    doc = model.build(cat, records, collected, model.RunInfo(
        id=run.name, start=model.now(), end=model.now(), version="0.1.0", revision="synthetic", command=["pytest"],
        profile="sev-snp", exit_code=2, pytest_exit="TESTS_FAILED"), host, run, waivers)
    assert schema.problems(doc) == []
    return doc


def test_page_renders_every_requirement_offline_at_desktop_and_phone_width(tmp_path: Path) -> None:
    run = tmp_path / "20261206-000000-synthetic"
    doc = _synthetic_result(run)
    (run / "result.json").write_text(json.dumps(doc))
    page = write_html(doc, run)
    assert {q["outcome"] for q in doc["requirements"]} == set(model.OUTCOMES)
    found = inspect_page(page, (1280, 390), tmp_path)
    expected = {q["id"]: q["outcome"] for q in doc["requirements"]}
    for view in found.views:
        shown = {row["id"]: row["outcome"] for row in view.rows}
        assert shown == expected, view.width
        assert all(row["shown"] == row["outcome"] and row["visible"] for row in view.rows), view.width
        assert view.verdict == "NOT ESTABLISHED" and "exit code 2" in view.banner
        # a mobile viewport widens to its content: the layout must keep it at the requested width
        assert view.inner_width == view.width and view.scroll_width <= view.width, \
            f"{view.width}px: page is {view.scroll_width}px wide (viewport {view.inner_width})"
        assert view.scripts == 0
        assert view.screenshot.stat().st_size > 10_000
    assert found.requests and all(u == page.as_uri() for u in found.requests), found.requests
    keep = os.environ.get("SEVKIT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for p in tmp_path.glob("*.png"):
            shutil.copy(p, keep)
