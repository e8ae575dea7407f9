"""The fleet's pure parts, without a lab: selectors, the run-folder adapter, the merge, the exit
code, the progress lines and the CLI's usage errors. Run folders here are synthetic (built in
the test), shaped like what fixtures/evidence.py writes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sevkit.errors import UsageError
from sevkit.fleet.merge import fleet_exit_code, load_run, regressions, write_junit, write_result
from sevkit.fleet.outcome import HostOutcome, HostState, Phase, Status
from sevkit.fleet.progress import Progress
from sevkit.fleet.selection import matches, parse_selector

REPO = Path(__file__).resolve().parents[2]

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="suites.host.test_cpu" name="test_a"/>
<testcase classname="suites.host.test_cpu" name="test_b"><failure message="no"/></testcase>
<testcase classname="suites.host.test_kvm" name="test_c"><skipped message="n/a"/></testcase>
<testcase classname="suites.host.test_kvm" name="test_d"><error message="boom"/></testcase>
</testsuite></testsuites>"""


def _run_folder(path: Path, code: int = 1) -> Path:
    """A synthetic run folder: junit.xml, exit_code and host.json as the suite writes them."""
    path.mkdir(parents=True)
    (path / "junit.xml").write_text(JUNIT)
    (path / "exit_code").write_text(f"{code}\n")
    (path / "host.json").write_text(json.dumps({"identity": {"kernel": "6.12", "cpu": "EPYC 9654"},
                                                "features": {"SEV": True}}))
    return path


def test_selectors() -> None:
    sel = [parse_selector("gen=genoa,bios=1_9"), parse_selector("name=lab-07")]
    assert matches("a", {"gen": "genoa", "bios": "1_9"}, sel)
    assert not matches("a", {"gen": "genoa"}, sel)
    assert matches("lab-07", {}, sel)
    for bad in ("gen", "=x", "Gen=x", "gen="):
        with pytest.raises(UsageError):
            parse_selector(bad)


def test_load_run_reads_junit_exit_code_and_identity(tmp_path: Path) -> None:
    run = load_run(_run_folder(tmp_path / "r"))
    assert run.requirements == {"suites.host.test_cpu::test_a": "passed", "suites.host.test_cpu::test_b": "failed",
                                "suites.host.test_kvm::test_c": "skipped", "suites.host.test_kvm::test_d": "error"}
    assert run.counts == {"passed": 1, "failed": 1, "skipped": 1, "error": 1}
    assert run.exit_code == 1 and run.identity["kernel"] == "6.12" and run.identity["features"] == {"SEV": True}


def test_load_run_prefers_result_json(tmp_path: Path) -> None:
    folder = _run_folder(tmp_path / "r")
    (folder / "result.json").write_text(json.dumps({"exit_code": 0, "requirements": [
        {"id": "HOST-CPU-001", "outcome": "PASS"}, {"id": "HOST-KVM-002", "outcome": "NOT-APPLICABLE"}]}))
    run = load_run(folder)
    assert run.requirements == {"HOST-CPU-001": "passed", "HOST-KVM-002": "not-applicable"}
    assert run.exit_code == 0 and run.identity["kernel"] == "6.12"   # identity still from host.json


def test_exit_code_rules() -> None:
    ok, bad, lost = (HostOutcome("a", Status.CONFORMANT), HostOutcome("b", Status.NON_CONFORMANT),
                     HostOutcome("c", Status.NOT_MEASURED))
    assert fleet_exit_code([ok], True) == 0
    assert fleet_exit_code([ok, bad], True) == 1
    assert fleet_exit_code([ok, bad, lost], True) == 2      # not measured outranks non-conformant
    assert fleet_exit_code([ok], False) == 2                # an interrupted run is never a pass
    assert fleet_exit_code([], True) == 2


def test_merge_keeps_every_host(tmp_path: Path) -> None:
    import datetime as dt

    _run_folder(tmp_path / "hosts" / "a", code=1)
    outcomes = [HostOutcome("a", Status.NON_CONFORMANT, report_dir="hosts/a", tags={"gen": "genoa"}),
                HostOutcome("b", Status.NOT_MEASURED, reason="ssh: cannot connect")]
    previous = tmp_path / "prev"
    previous.mkdir()
    (previous / "result.json").write_text(json.dumps(
        {"matrix": {"suites.host.test_cpu::test_b": {"a": "passed"}}}))
    data = write_result(tmp_path, run_id="x", selection=["gen=genoa"], profile="sev", pytest_args=[],
                        outcomes=outcomes, complete=True, started=dt.datetime.now(dt.UTC), previous=previous,
                        notes=[])
    assert data["exit_code"] == 2 and [h["place"] for h in data["hosts"]] == ["a", "b"]
    assert data["matrix"]["suites.host.test_cpu::test_b"] == {"a": "failed"}
    assert data["regressions"] == [{"requirement": "suites.host.test_cpu::test_b", "place": "a",
                                    "before": "passed", "now": "failed"}]
    suites = ET.parse(write_junit(tmp_path, outcomes)).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["a", "b"]
    assert len(suites[0].findall("testcase")) == 4
    assert suites[1].find("testcase/error").get("message") == "ssh: cannot connect"  # type: ignore[union-attr]
    assert regressions({}, {}) == []


def test_progress_lines_per_phase_change() -> None:
    out = io.StringIO()
    state = HostState("h00")
    p = Progress([state], out, live=False)
    p.update()
    p.update()                      # no change: no new line
    state.set_phase(Phase.RUNNING)
    state.count("PASSED")
    p.update()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("host") and len(lines) == 3
    assert "running" in lines[2] and " 1 " in lines[2]


@pytest.mark.parametrize(("args", "message"), [
    (["--match", "gen=genoa"], "--coordinator"),
    (["--coordinator", "x:1"], "--match"),
    (["--coordinator", "x:1", "--match", "gen"], "expected k=v"),
    (["--coordinator", "x:1", "--match", "gen=a", "--profile", "tdx"], "--profile"),
    (["--coordinator", "x:1", "--match", "gen=a", "--parallel", "0"], "--parallel"),
    (["--coordinator", "x:1", "--match", "gen=a", "--identity", "/nonexistent/key"], "--identity"),
    (["--coordinator", "127.0.0.1:1", "--match", "gen=a"], "coordinator 127.0.0.1:1"),   # nothing listens
])
def test_cli_usage_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "known_hosts").write_text("")
    proc = subprocess.run([sys.executable, "-m", "sevkit", "fleet", "--known-hosts", str(tmp_path / "known_hosts"),
                           *args], capture_output=True, text=True,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sevkit: error:") and message in lines[0], proc.stderr


def test_progress_live_table_redraws_in_place() -> None:
    out = io.StringIO()
    states = [HostState("h00"), HostState("h01")]
    p = Progress(states, out, live=True)
    p.update()
    states[1].set_phase(Phase.INSTALLING)
    p.update()
    text = out.getvalue()
    assert text.count("\x1b[3F") == 1            # the second draw moved up over header + 2 rows
    assert "installing" in text.split("\x1b[3F")[1]
