"""The fault matrix's table: cells append rows to one file (xdist workers too); the controller prints the
whole phase x fault table at the end of the run and writes it to reports/fault-matrix.txt (and .json)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import pytest

from .matrix import REFERENCED, load_rows, rows_file, table

REPO = Path(__file__).resolve().parents[2]
_REFERENCED_IDS = {nodeid for nodeid, _ in REFERENCED.values()}
_referenced_outcomes: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return           # workers inherit the controller's file through the environment
    fd, name = tempfile.mkstemp(prefix="sevkit-fault-rows-", suffix=".jsonl")
    os.close(fd)
    os.environ["SEVKIT_FAULT_ROWS"] = name


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid in _REFERENCED_IDS and (report.when == "call" or report.outcome != "passed"):
        _referenced_outcomes[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    path = rows_file()
    rows = load_rows(path)
    path.unlink(missing_ok=True)
    if not rows and not _referenced_outcomes:
        return
    lines = table(rows, _referenced_outcomes)
    terminalreporter.section("sevkit fault matrix (issue 10): phase x fault")
    for line in lines:
        terminalreporter.write_line(line)
    out = REPO / "reports"
    try:
        out.mkdir(exist_ok=True)
        (out / "fault-matrix.txt").write_text("\n".join(lines) + "\n")
        (out / "fault-matrix.json").write_text(json.dumps([asdict(r) for r in rows.values()], indent=1) + "\n")
        terminalreporter.write_line(f"fault matrix written to {out / 'fault-matrix.txt'}")
    except OSError as exc:
        terminalreporter.write_line(f"fault matrix not written to {out}: {exc}")
