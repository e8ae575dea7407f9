"""fixtures/results.py in real pytest runs: result.json (schema-valid) and report.html at the end of every run,
JUnit properties and allure labels per test, categories and attachments, waivers, SIGTERM.

Each case runs a small suite in a subprocess with the real fixtures/ plugins and a SYNTHETIC catalog written
here (the suite's tests are synthetic too); nothing probes or boots anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from sevkit.report import schema

REPO = Path(__file__).resolve().parents[2]
CONFTEST = 'pytest_plugins = ["fixtures.options", "fixtures.evidence", "fixtures.results"]\n'
INI = "[pytest]\naddopts = -p no:cacheprovider\njunit_family = xunit1\n"

CATALOG = """
[[level]]
id = "host-ready"
n = 1
title = "Host ready"
profile = "none"
[[level]]
id = "sev"
n = 2
title = "SEV guests"
profile = "sev"
[[level]]
id = "sev-es"
n = 3
title = "SEV-ES guests"
profile = "sev-es"
[[level]]
id = "sev-snp"
n = 4
title = "SEV-SNP guests"
profile = "sev-snp"
""" + "".join(f"""
[[requirement]]
id = "{rid}"
title = "synthetic requirement {rid}"
level = "{level}"
strength = "{strength}"
source = "synthetic"
applies = "always"
hint = "synthetic fix for {rid}"
tests = {tests}
""" for rid, level, strength, tests in [
    ("T-001", "host-ready", "MUST", '["test_ok"]'),
    ("T-002", "host-ready", "MUST", '["test_fails"]'),
    ("T-003", "sev", "MUST", '["test_errors"]'),
    ("T-004", "sev", "MUST", '["test_waived"]'),
    ("T-005", "sev", "SHOULD", '["test_should"]'),
    ("T-006", "sev-es", "MUST", '["test_slow[a]", "test_slow[b]"]'),
])

BODY = '''
import time
import pytest
from sevkit.errors import LaunchError

def test_ok(artifacts):
    artifacts.write_text("console.log", "SYNTHETIC guest console\\n")

def test_fails(artifacts):
    artifacts.write_text("verdict.txt", "SYNTHETIC verdict\\n")
    assert False, "SEV_STATUS bit 0 is 0"

def test_errors():
    raise LaunchError("QEMU did not start: synthetic")

def test_waived():
    assert False, "known BIOS defect"

def test_should():
    assert False, "optional thing missing"

@pytest.mark.parametrize("v", ["a", "b"])
def test_slow(v):
    if v == "b":
        time.sleep(float(__import__("os").environ.get("SLEEP", "0")))
'''

WAIVERS = """
[[waiver]]
requirement = "T-004"
host = "*"
reason = "vendor ticket 4711"
owner = "lab@example.org"
expires = 2099-12-31

[[waiver]]
requirement = "T-002"
host = "*"
reason = "old waiver"
owner = "someone"
expires = 2020-01-01
"""


def _setup(tmp_path: Path, body: str = BODY) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_case.py").write_text(body)
    (tmp_path / "catalog.toml").write_text(CATALOG)
    (tmp_path / "waivers.toml").write_text(WAIVERS)


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:xdist", "--sev-catalog", str(tmp_path / "catalog.toml"),
            "--sev-waivers", str(tmp_path / "waivers.toml"), "--sev-operator", "ci-bot", *extra]


def _result(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    run = (tmp_path / "reports" / "latest").resolve()
    doc = json.loads((run / "result.json").read_text())
    assert schema.problems(doc) == []
    return doc, run


def _outcomes(doc: dict[str, Any]) -> dict[str, str]:
    return {q["id"]: q["outcome"] for q in doc["requirements"]}


def test_result_page_junit_and_allure_of_a_mixed_run(tmp_path: Path) -> None:
    _setup(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(_args(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    doc, run = _result(tmp_path)
    # an ERROR outranks the failure (exit 2 once the body-exception hook of fixtures/evidence.py is in)
    assert proc.returncode in (1, 2) and doc["exit_code"] == proc.returncode, out
    assert _outcomes(doc) == {"T-001": "PASS", "T-002": "FAIL", "T-003": "ERROR", "T-004": "WAIVED",
                              "T-005": "FAIL", "T-006": "PASS"}
    assert (doc["status"], doc["verdict"], doc["run"]["operator"]) == ("incomplete", "NOT ESTABLISHED", "ci-bot")
    reqs = {q["id"]: q for q in doc["requirements"]}
    assert reqs["T-003"]["category"] == "infrastructure" and "QEMU did not start" in reqs["T-003"]["reason"]
    assert reqs["T-002"]["category"] == "product" and reqs["T-002"]["reason"] == "SEV_STATUS bit 0 is 0"
    assert reqs["T-004"]["waiver"]["owner"] == "lab@example.org"
    assert [w["requirement"] for w in doc["waivers"]["expired"]] == ["T-002"]
    assert reqs["T-001"]["evidence"][0]["path"].endswith("console.log")
    assert len(reqs["T-006"]["tests"]) == 2
    # the terminal summary and the page
    assert f"sevkit NOT ESTABLISHED (exit {proc.returncode})" in out and "expired waiver ignored: T-002" in out
    page = (run / "report.html").read_text()
    assert "NOT ESTABLISHED" in page and "synthetic fix for T-002" in page and "vendor ticket 4711" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    # JUnit: req, level, host per testcase
    cases = ET.parse(run / "junit.xml").getroot().iter("testcase")
    props = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases}
    assert props["test_fails"]["req"] == "T-002" and props["test_fails"]["level"] == "host-ready"
    assert props["test_fails"]["host"]
    # allure: labels, categories, attachments
    allure = run / "allure-results"
    results = [json.loads(p.read_text()) for p in allure.glob("*-result.json")]
    fails = next(r for r in results if r["name"] == "test_fails")
    labels = {(lb["name"], lb["value"]) for lb in fails["labels"]}
    assert {("req", "T-002"), ("level", "host-ready")} <= labels
    assert any(a["name"].endswith("verdict.txt") for a in fails.get("attachments", []))
    waived = next(r for r in results if r["name"] == "test_waived")
    assert waived["status"] == "skipped" and "WAIVED T-004" in waived["statusDetails"]["trace"]
    cats = json.loads((allure / "categories.json").read_text())
    assert {c["name"].split(" (")[0] for c in cats} >= {"Infrastructure problems", "Product defects"}


def test_waived_and_should_failures_alone_exit_0_and_conform(tmp_path: Path) -> None:
    _setup(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(_args(tmp_path, "-k", "ok or waived or should or slow"), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc, _ = _result(tmp_path)
    assert doc["status"] == "incomplete" and "not selected" in doc["status_reason"]
    assert doc["verdict"] == "NOT ESTABLISHED"   # a selection never certifies a level


def test_sigterm_mid_run_writes_an_incomplete_result_and_page(tmp_path: Path) -> None:
    _setup(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO), SLEEP="60")
    proc = subprocess.Popen(_args(tmp_path), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        marker = tmp_path / "reports" / "latest"
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)          # well into test_slow[b]'s sleep
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 2, out
    doc, run = _result(tmp_path)
    assert doc["status"] == "incomplete" and doc["verdict"] == "NOT ESTABLISHED"
    assert "interrupted" in doc["status_reason"] and doc["exit_code"] == 2
    assert "NOT ESTABLISHED" in (run / "report.html").read_text()


def test_every_test_errored_is_aborted_with_a_result(tmp_path: Path) -> None:
    body = "import pytest\n@pytest.fixture\ndef guest():\n    raise RuntimeError('no KVM')\n" \
           "def test_ok(guest):\n    pass\n"
    _setup(tmp_path, body)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(_args(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    doc, run = _result(tmp_path)
    assert doc["status"] == "aborted" and doc["verdict"] == "NOT ESTABLISHED"
    assert (run / "report.html").is_file()


def test_bad_waivers_file_is_one_line_exit_2(tmp_path: Path) -> None:
    _setup(tmp_path)
    (tmp_path / "waivers.toml").write_text('[[waiver]]\nrequirement = "T-404"\nreason = "r"\nowner = "o"\n'
                                           'expires = 2099-01-01\n')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(_args(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "sevkit: error: waivers file" in proc.stdout + proc.stderr and "T-404" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
