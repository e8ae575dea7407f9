"""Fault-matrix cells on the whole suite, run as a real pytest subprocess (its own session, so every
process it starts can be counted afterwards): SIGTERM and Ctrl-C (SIGINT) while its guest starts, and
the report folder on a full tmpfs. Each cell then checks the run folder, counts what is left, and runs
the suite again on the same machine (the host suite: no guest, ~2 s) to show the next run works.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sevkit.deadline import Deadline
from sevkit.report import schema

from .matrix import Row, record
from .probes import qemu_pids_under, report_state, session_members

REPO = Path(__file__).resolve().parents[2]
GUEST_CASE = ["suites/guest", "-k", "plain and banner"]


@pytest.fixture
def private() -> Iterator[Path]:
    """The run's TMPDIR (guest run folders, dump scratch): short, for QEMU's 108-byte socket paths."""
    d = Path(tempfile.mkdtemp(prefix="sk-flt-", dir="/tmp"))
    try:
        yield d
    finally:
        for pid in qemu_pids_under(d):       # only QEMUs this cell's run started
            os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


def _suite(args: list[str], reports: Path, private: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(private)}
    env.pop("SEVKIT_FAULT_ROWS", None)
    return subprocess.Popen([sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider",
                             f"--sev-report-dir={reports}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _finish(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, str, int]:
    """Wait for the run; returns (exit code, output, processes of its session still alive after it)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"the suite did not end within {timeout:.0f}s: {out.decode(errors='replace')[-1500:]}")
    time.sleep(0.5)
    left = session_members(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return proc.returncode, out.decode(errors="replace"), len(left)


def _next_run(reports: Path, private: Path) -> tuple[bool, str]:
    """The suite again on the same machine (host checks only): a verdict (0 or 1), a complete folder."""
    before = (reports / "latest").resolve() if (reports / "latest").exists() else None
    code, out, left = _finish(_suite(["suites/host"], reports, private), 120)
    run = (reports / "latest").resolve()
    ok, state = report_state(run)
    works = code in (0, 1) and ok and run != before and not left
    return works, f"next run exit {code}, {state}" + ("" if works else f": {out[-600:]}")


def _dumps(private: Path) -> int:
    return sum(1 for p in private.rglob("*") if p.is_file() and p.suffix in (".elf", ".raw"))


@dataclass
class Interrupted:
    """What one signalled suite run left: its exit, output, the report folder and whether the next run works."""

    code: int
    out: str
    left: int
    qemu_left: list[int]
    took: float
    ok: bool
    state: str
    kept: list[str]
    works: bool
    next_state: str

    @property
    def named(self) -> bool:
        return "KeyboardInterrupt" in self.out or "Interrupted" in self.out

    @property
    def outcome(self) -> str:
        return (f"exit {self.code}, {'ERROR' if self.code == 2 else 'NOT AN ERROR'}; "
                f"{'names the interruption' if self.named else 'DOES NOT name the interruption'}")


def _act_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, act: Callable[[], None],
              timeout: float = 120) -> tuple[int, str, int, float]:
    """Wait (300 s at most) until ``ready()``, then ``act()`` and let the run end (``timeout``); the run is
    killed on every other path. Returns (exit code, output, processes left, seconds from start)."""
    start = time.monotonic()
    try:
        wait = Deadline(300)
        while not ready():
            assert proc.poll() is None, f"the suite ended before {what}: {proc.stdout.read()!r}"  # type: ignore[union-attr]
            assert not wait.expired, f"not {what} within 300 s"
            time.sleep(0.05)
        act()
        code, out, left = _finish(proc, timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return code, out, left, time.monotonic() - start


def _signal_when(proc: subprocess.Popen[bytes], sig: signal.Signals, ready: Callable[[], bool], what: str,
                 settle: Callable[[], None], reports: Path, private: Path) -> Interrupted:
    """Send ``sig`` once ``ready()`` and ``settle()`` passed; then collect what the run left (exit, processes,
    QEMUs, the report folder, the guest evidence kept) and run the suite again."""
    def act() -> None:
        settle()
        proc.send_signal(sig)

    code, out, left, took = _act_when(proc, ready, what, act)
    qemu_left = qemu_pids_under(private)
    run = (reports / "latest").resolve()
    ok, state = report_state(run)
    guest_ev = sorted(run.glob("guest-plain-*"))
    kept = sorted(p.name for p in guest_ev[0].iterdir()) if guest_ev else []
    works, next_state = _next_run(reports, private)
    return Interrupted(code, out, left, qemu_left, took, ok, state, kept, works, next_state)


def _assert_clean(r: Interrupted, private: Path) -> None:
    assert r.code == 2 and r.named, r.out[-2000:]
    assert r.ok, r.state
    assert not r.left and not r.qemu_left, (r.left, r.qemu_left)
    assert not list(private.glob("sevkit-*")), "the run's private folder was not removed"
    assert r.works, r.next_state


@pytest.mark.qemu
@pytest.mark.parametrize(("sig", "phase", "after"), [(signal.SIGTERM, "launch", 0.0),
                                                     (signal.SIGINT, "launch", 0.0),
                                                     (signal.SIGTERM, "boot to login", 5.0),
                                                     (signal.SIGINT, "boot to login", 5.0)],
                         ids=["SIGTERM-at-launch", "SIGINT-at-launch", "SIGTERM-at-boot", "SIGINT-at-boot"])
def test_suite_interrupted(sig: signal.Signals, phase: str, after: float, tmp_path: Path, private: Path) -> None:
    """The guest suite cancelled (SIGTERM, a CI job) or Ctrl-C'd (SIGINT) while its guest's QEMU starts or
    boots: exit 2 naming the interruption, a complete report folder with the guest's evidence so far,
    no process of the run left, no QEMU, no run folder, and the next run works."""
    reports = tmp_path / "reports"
    proc = _suite(GUEST_CASE, reports, private)

    def settle() -> None:
        time.sleep(after)
        assert qemu_pids_under(private), "QEMU exited on its own before the signal"

    r = _signal_when(proc, sig, lambda: bool(qemu_pids_under(private)), "QEMU started", settle, reports, private)
    evidence = "guest evidence: " + ",".join(k for k in r.kept if k.endswith((".log", ".sh"))) if r.kept else "NONE"
    record(Row(phase, sig.name, r.outcome, evidence, r.state, r.left + len(r.qemu_left), _dumps(private),
               round(r.took, 1), test=f"faults/test_suite_faults.py::test_suite_interrupted[{sig.name}]",
               note=r.next_state))
    need = {"run.sh"} if phase == "launch" else {"run.sh", "console.log"}    # no console before QMP answers
    assert need <= set(r.kept), r.kept
    _assert_clean(r, private)


@pytest.fixture
def full_tmpfs(small_tmpfs: Path) -> Iterator[Path]:
    """The 16 MiB tmpfs filled up to the last block."""
    filler = _fill(small_tmpfs)
    yield small_tmpfs
    filler.unlink(missing_ok=True)


def test_report_writing_disk_full(full_tmpfs: Path, private: Path) -> None:
    """--sev-report-dir on a full tmpfs: the host suite must end as an ERROR (exit 2) that names the lack of
    space, without an internal error; once space is back, the next run on the same machine works."""
    reports = full_tmpfs / "reports"
    start = time.monotonic()
    code, out, left = _finish(_suite(["suites/host"], reports, private), 120)
    took = time.monotonic() - start
    latest = reports / "latest"
    run = latest.resolve() if latest.exists() else None
    state = report_state(run)[1] if run is not None else "no run folder"
    named = "No space left" in out or "ENOSPC" in out
    internal = "INTERNALERROR" in out
    (full_tmpfs / "filler").unlink()
    works, next_state = _next_run(reports, private)
    outcome = (f"exit {code}, {'ERROR' if code == 2 else 'NOT AN ERROR'}; "
               f"{'names ENOSPC' if named else 'does NOT name ENOSPC'}{'; INTERNALERROR' if internal else ''}")
    record(Row("report writing", "disk full", outcome, "report folder as far as it fits", state, left,
               _dumps(private), round(took, 1), test="faults/test_suite_faults.py::test_report_writing_disk_full",
               note=next_state))
    assert not left, left
    assert works, next_state
    assert code == 2 and named and not internal, out[-3000:]


_STOP_AT_SESSIONFINISH = '''\
"""Self-test helper (synthetic): the suite stops itself once its session ends, so a signal lands while it
writes its final report (junit.xml, result.json, report.html, exit_code)."""
import ast
import json
import os
import signal

import pytest


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    os.kill(os.getpid(), signal.SIGSTOP)
'''


def _stopped(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_report_writing_interrupted(sig: signal.Signals, tmp_path: Path, private: Path) -> None:
    """The host suite signalled while it writes its final report: the suite is stopped (SIGSTOP) inside its
    session-finish hooks, signalled, then continued. Exit 2 naming the interruption, and a complete,
    schema-valid report folder (result.json says interrupted), no process left, the next run works."""
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "sk_stop_at_finish.py").write_text(_STOP_AT_SESSIONFINISH)
    reports = tmp_path / "reports"
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{plugin_dir}{os.pathsep}{env_path}" if env_path else str(plugin_dir)
    try:
        proc = _suite(["suites/host", "-p", "sk_stop_at_finish"], reports, private)
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            os.environ.pop("PYTHONPATH", None)
    start = time.monotonic()
    try:
        wait = Deadline(120)
        while not _stopped(proc.pid):
            assert proc.poll() is None, f"the suite ended without reaching sessionfinish: {proc.stdout.read()!r}"  # type: ignore[union-attr]
            assert not wait.expired, "the suite did not reach sessionfinish within 120 s"
            time.sleep(0.02)
        proc.send_signal(sig)
        proc.send_signal(signal.SIGCONT)
        code, out, left = _finish(proc, 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    took = time.monotonic() - start
    run = (reports / "latest").resolve()
    ok, state = report_state(run)
    problems: list[str] = []
    result: dict[str, object] = {}
    try:
        result = json.loads((run / "result.json").read_text())
        problems = schema.problems(result)
    except (OSError, ValueError) as exc:
        problems = [f"result.json: {exc}"]
    status = f"{result.get('status')}: {result.get('status_reason')}"
    interrupted = result.get("status") == "incomplete" and "interrupted" in str(result.get("status_reason"))
    named = "nterrupt" in out
    works, next_state = _next_run(reports, private)
    outcome = (f"exit {code}, {'ERROR' if code == 2 else 'NOT AN ERROR'}; "
               f"{'names the interruption' if named else 'DOES NOT name the interruption'}"
               f"{'; Traceback' if 'Traceback' in out else ''}")
    report = state if not problems else f"{state}; SCHEMA: {problems[0]}"
    record(Row("report writing", sig.name, outcome, "host.json, session.log" if (run / "host.json").is_file()
               else "NO host.json", f"{report}; result.json {status}",
               left, _dumps(private), round(took, 1),
               test=f"faults/test_suite_faults.py::test_report_writing_interrupted[{sig.name}]", note=next_state))
    assert code == 2 and named and "Traceback" not in out, out[-3000:]
    assert ok and not problems and interrupted, (state, problems, interrupted)
    assert not left, left
    assert works, next_state


_LONG_COMMANDS = '''\
"""Self-test helper (synthetic, written by tests/faults for one run): a guest test that runs a long command
over one transport in the main thread and over the other in a second thread, so the suite's signal lands
while a serial command and an SSH command are both in flight. Markers tell the cell when they started."""
import os
import threading
from pathlib import Path

MARKS = Path(os.environ["SK_FAULT_MARKS"])


def _run(shell, via, swallow):
    (MARKS / f"{via}-started").touch()
    outcome = "finished"
    try:
        shell.run("sleep 90", timeout=150)
    except BaseException as exc:
        outcome = repr(exc)
        if not swallow:
            raise
    finally:
        (MARKS / f"{via}-ended").write_text(outcome)


def test_long_commands(guest):
    main = os.environ["SK_FAULT_MAIN"]
    other = "ssh" if main == "serial" else "serial"
    threading.Thread(target=_run, args=(guest.shell(other), other, True), daemon=True).start()
    _run(guest.shell(main), main, False)
'''
_PHASE = {"serial": "serial command", "ssh": "SSH command"}


def _plugins() -> list[str]:
    """The suite's plugins as the root conftest.py names them (the helper test lives outside the repo)."""
    tree = ast.parse((REPO / "conftest.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "pytest_plugins":
            return [arg for name in ast.literal_eval(node.value) for arg in ("-p", name)]
    raise AssertionError("conftest.py names no pytest_plugins")


@pytest.mark.qemu
@pytest.mark.parametrize(("sig", "main"), [(signal.SIGTERM, "serial"), (signal.SIGINT, "ssh")],
                         ids=["SIGTERM-serial+ssh", "SIGINT-ssh+serial"])
def test_commands_interrupted(sig: signal.Signals, main: str, tmp_path: Path, private: Path) -> None:
    """The guest suite signalled while a serial command and an SSH command run in its guest (one boot per
    signal serves both transports; the main thread waits on ``main``): exit 2 naming the interruption, a
    complete report folder, console.log kept, no process or QEMU left, and the next run works."""
    case = tmp_path / "case"
    marks = tmp_path / "marks"
    case.mkdir()
    marks.mkdir()
    (case / "test_sk_long_commands.py").write_text(_LONG_COMMANDS)
    reports = tmp_path / "reports"
    saved = {k: os.environ.get(k) for k in ("SK_FAULT_MARKS", "SK_FAULT_MAIN")}
    os.environ.update(SK_FAULT_MARKS=str(marks), SK_FAULT_MAIN=main)
    try:
        proc = _suite([str(case), "-k", "plain", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO),
                       *_plugins()], reports, private)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def settle() -> None:
        time.sleep(2.0)              # both commands are under way (sleep 90)
        ended = sorted(p.name for p in marks.glob("*-ended"))
        assert not ended, f"a command ended before the signal: {ended}"

    r = _signal_when(proc, sig, lambda: all((marks / f"{via}-started").exists() for via in _PHASE),
                     "its guest commands ran", settle, reports, private)
    evidence = "guest evidence: " + ",".join(k for k in r.kept if k.endswith(".log")) if r.kept else "NONE"
    for via, phase in _PHASE.items():
        where = "main thread" if via == main else "second thread, same run"
        end = marks / f"{via}-ended"
        ended_as = f"{via} command ended: {end.read_text()[:120] if end.exists() else 'no marker'}"
        record(Row(phase, sig.name, f"{r.outcome} ({where})", evidence, r.state, r.left + len(r.qemu_left),
                   _dumps(private), round(r.took, 1),
                   test=f"faults/test_suite_faults.py::test_commands_interrupted[{sig.name}]",
                   note=f"{r.next_state}; {ended_as}"))
    assert "console.log" in r.kept, r.kept
    _assert_clean(r, private)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as fh, pytest.raises(OSError):
        while True:
            fh.write(b"\0" * (1 << 20))
            fh.flush()
    return filler


@pytest.mark.qemu
def test_boot_disk_full(small_tmpfs: Path, private: Path) -> None:
    """The report folder (the guest's evidence: console.log) fills up while the guest boots: an ERROR
    (exit 2) naming the console log and the lack of space, no process or QEMU left, no run folder, and
    the next run works once space is back."""
    reports = small_tmpfs / "reports"
    proc = _suite(GUEST_CASE, reports, private)

    def fill() -> None:
        _fill(small_tmpfs)          # QMP answered and the firmware/kernel is writing to the console

    code, out, left, took = _act_when(
        proc, lambda: any(p.stat().st_size for p in reports.glob("*/guest-plain-*/console.log")),
        "the guest's console spoke", fill, timeout=300)
    qemu_left = qemu_pids_under(private)
    (small_tmpfs / "filler").unlink()
    run = (reports / "latest").resolve()
    ev = sorted(run.glob("guest-plain-*"))
    console = ev[0] / "console.log" if ev else None
    kept = f"console.log {console.stat().st_size} bytes (cut at the full disk)" if console and console.is_file() \
        else "NO console.log"
    named = "console log" in out and "No space left" in out
    internal = "INTERNALERROR" in out
    works, next_state = _next_run(reports, private)
    outcome = (f"exit {code}, {'ERROR' if code == 2 else 'NOT AN ERROR'}; "
               f"{'GuestError names console log + ENOSPC' if named else 'does NOT name the console log ENOSPC'}"
               f"{'; INTERNALERROR' if internal else ''}")
    record(Row("boot to login", "disk full", outcome, kept, report_state(run)[1], left + len(qemu_left),
               _dumps(private), round(took, 1), test="faults/test_suite_faults.py::test_boot_disk_full",
               note=next_state))
    assert code == 2 and named and not internal, out[-3000:]
    assert not left and not qemu_left, (left, qemu_left)
    assert not list(private.glob("sevkit-*")), "the run's private folder was not removed"
    assert works, next_state
