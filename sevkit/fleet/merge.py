"""Per-host run folders -> one fleet result.json, one merged junit.xml, one report.html.

``load_run`` is the single adapter over what a host's run folder holds. Today every run writes
``junit.xml`` (one testcase per requirement), ``exit_code`` and ``host.json`` (identity); when a
run also has ``result.json`` (sevkit's canonical per-run result), its requirement outcomes are
used instead. Nothing else here reads a host folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .outcome import HostOutcome, Status

FLEET_SCHEMA_VERSION = 1


@dataclass
class RunSummary:
    """What the fleet needs from one host's run folder."""

    requirements: dict[str, str] = field(default_factory=dict)   # test id -> passed/failed/error/skipped
    counts: dict[str, int] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


def _junit_outcome(case: ET.Element) -> str:
    for tag, outcome in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
        if case.find(tag) is not None:
            return outcome
    return "passed"


# result.json requirement outcomes (catalog vocabulary) -> the fleet's lower-case outcomes
_OUTCOMES = {"PASS": "passed", "FAIL": "failed", "ERROR": "error", "SKIPPED": "skipped",
             "NOT-APPLICABLE": "not-applicable", "WAIVED": "waived"}


def _from_result_json(data: dict[str, Any], summary: RunSummary) -> None:
    """A per-run result.json: ``requirements[]`` with ``id`` and ``outcome`` (PASS, FAIL, ...)."""
    for item in data.get("requirements") or []:
        if isinstance(item, dict):
            key = str(item.get("id") or "")
            outcome = str(item.get("outcome") or "")
            if key and outcome:
                summary.requirements[key] = _OUTCOMES.get(outcome, outcome.lower())
    host = data.get("host")
    if isinstance(host, dict):
        ident = host.get("identity", host)
        if isinstance(ident, dict):
            summary.identity = {k: v for k, v in ident.items() if isinstance(v, str | int | float | bool)}
    if isinstance(data.get("exit_code"), int):
        summary.exit_code = int(data["exit_code"])


def load_run(folder: Path) -> RunSummary:
    """The adapter: requirement outcomes, counts, identity and exit code of one run folder."""
    summary = RunSummary()
    result = folder / "result.json"
    if result.is_file():
        try:
            _from_result_json(json.loads(result.read_text()), summary)
        except (ValueError, OSError):
            summary.requirements.clear()
    junit = folder / "junit.xml"
    if not summary.requirements and junit.is_file():
        try:
            root = ET.parse(junit).getroot()
        except ET.ParseError:
            root = None
        if root is not None:
            for case in root.iter("testcase"):
                key = f"{case.get('classname', '')}::{case.get('name', '')}"
                # a test with a setup error and a teardown error appears twice: the worse counts
                outcome = _junit_outcome(case)
                if summary.requirements.get(key) != "error":
                    summary.requirements[key] = outcome
    for outcome in summary.requirements.values():
        summary.counts[outcome] = summary.counts.get(outcome, 0) + 1
    host = folder / "host.json"
    if host.is_file() and not summary.identity:
        try:
            data = json.loads(host.read_text())
            summary.identity = dict(data.get("identity") or {})
            summary.identity["features"] = data.get("features")
        except (ValueError, OSError, AttributeError):
            pass
    code = folder / "exit_code"
    if code.is_file() and summary.exit_code is None:
        with contextlib.suppress(ValueError):
            summary.exit_code = int(code.read_text().strip())
    return summary


def fleet_exit_code(outcomes: list[HostOutcome], complete: bool) -> int:
    """2 if any host was not measured (or the run is incomplete), else 1 if any is non-conformant, else 0."""
    if not complete or not outcomes or any(o.status is Status.NOT_MEASURED for o in outcomes):
        return 2
    if any(o.status is Status.NON_CONFORMANT for o in outcomes):
        return 1
    return 0


def matrix(outcomes: list[HostOutcome], fleet_dir: Path) -> dict[str, dict[str, str]]:
    """requirement -> place -> outcome; a host without a report has no column entries."""
    out: dict[str, dict[str, str]] = {}
    for o in outcomes:
        if not o.report_dir:
            continue
        for req, outcome in load_run(fleet_dir / o.report_dir).requirements.items():
            out.setdefault(req, {})[o.place] = outcome
    return dict(sorted(out.items()))


def regressions(current: dict[str, dict[str, str]], previous: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    """(requirement, place) that passed in the previous fleet run of the same selection and not now."""
    out = []
    for req, row in current.items():
        for place, outcome in row.items():
            before = previous.get(req, {}).get(place)
            if before == "passed" and outcome in ("failed", "error"):
                out.append({"requirement": req, "place": place, "before": before, "now": outcome})
    return out


def write_result(fleet_dir: Path, *, run_id: str, selection: list[str], profile: str | None,
                 pytest_args: list[str], outcomes: list[HostOutcome], complete: bool,
                 started: dt.datetime, previous: Path | None, notes: list[str]) -> dict[str, Any]:
    mat = matrix(outcomes, fleet_dir)
    prev_matrix: dict[str, dict[str, str]] = {}
    if previous is not None and (previous / "result.json").is_file():
        try:
            prev_matrix = json.loads((previous / "result.json").read_text()).get("matrix", {})
        except (ValueError, OSError):
            prev_matrix = {}
    data: dict[str, Any] = {
        "schema_version": FLEET_SCHEMA_VERSION,
        "kind": "sevkit-fleet",
        "run_id": run_id,
        "selection": selection,
        "profile": profile,
        "pytest_args": pytest_args,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "complete": complete,                     # False: interrupted, some hosts never ran to the end
        "exit_code": fleet_exit_code(outcomes, complete),
        "counts": {str(s): sum(1 for o in outcomes if o.status is s) for s in Status},
        "hosts": [o.to_json() for o in outcomes],
        "matrix": mat,
        "previous_run": previous.name if previous is not None else None,
        "regressions": regressions(mat, prev_matrix),
        "notes": notes,
    }
    (fleet_dir / "result.json").write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    (fleet_dir / "exit_code").write_text(f"{data['exit_code']}\n")
    return data


def write_junit(fleet_dir: Path, outcomes: list[HostOutcome]) -> Path:
    """One <testsuite> per host (named after the place); a host without a report is one error case."""
    root = ET.Element("testsuites", name="sevkit fleet")
    for o in outcomes:
        suite = None
        if o.report_dir:
            junit = fleet_dir / o.report_dir / "junit.xml"
            try:
                suite = ET.parse(junit).getroot().find("testsuite") if junit.is_file() else None
            except ET.ParseError:
                suite = None
        if suite is None:
            suite = ET.Element("testsuite", tests="1", errors="1", failures="0", skipped="0")
            case = ET.SubElement(suite, "testcase", classname=f"fleet.{o.place}", name="host_measured")
            ET.SubElement(case, "error", message=o.reason or str(o.status)).text = o.reason
        suite.set("name", o.place)
        suite.set("hostname", o.address)
        props = suite.find("properties")
        if props is None:
            props = ET.Element("properties")
            suite.insert(0, props)
        for key, value in (("fleet.place", o.place), ("fleet.status", str(o.status)),
                           ("fleet.reason", o.reason), *((f"fleet.tag.{k}", v) for k, v in o.tags.items())):
            ET.SubElement(props, "property", name=key, value=value)
        for case in suite.iter("testcase"):   # keep test ids unique across hosts in CI views
            case.set("classname", f"{o.place}.{case.get('classname', '')}")
        root.append(suite)
    path = fleet_dir / "junit.xml"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
