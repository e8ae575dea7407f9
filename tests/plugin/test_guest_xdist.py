"""The guest fixtures under pytest-xdist: two workers each boot their own plain guest, and their
ports, sockets and folders never collide; one run folder holds both; no QEMU is left behind.

Runs the real suite (``suites/guest -k plain -n 2``) in a subprocess from the repository root:
two TCG boots in parallel, about a minute on 2 cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sevkit.qemu import reaper

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 600.0

pytestmark = pytest.mark.qemu


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _guest_run_folders(report_dir: Path) -> dict[str, Path]:
    """Each guest evidence folder's run folder (the parent of its QMP socket), from qemu.argv.json."""
    out = {}
    for argv_file in report_dir.glob("*/guest-*/qemu.argv.json"):
        argv = json.loads(argv_file.read_text())
        qmp = next(a for a in argv if a.startswith("unix:") and "qmp.sock" in a)
        out[argv_file.parent.name] = Path(qmp.removeprefix("unix:").split(",")[0]).parent
    return out


def _stop(proc: subprocess.Popen[str], report_dir: Path) -> None:
    """Stop the suite run and whatever QEMU it started (only those: found by their run folders)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)      # the suite turns SIGTERM into teardown
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for folder in _guest_run_folders(report_dir).values():
        for pid in reaper.running_from(folder.parent):
            reaper.kill_group(pid)


def test_two_workers_boot_their_own_plain_guest(tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    cmd = [_python(), "-m", "pytest", "suites/guest", "-k", "plain", "-n", "2", "-p", "no:cacheprovider",
           f"--sev-report-dir={report_dir}", "-v", "-rA"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        _stop(proc, report_dir)
    took = time.monotonic() - t0
    print(f"xdist plain run took {took:.1f}s")
    tail = out[-4000:]
    assert proc.returncode == 0, tail

    # one run folder, shared by the controller and both workers
    runs = [p for p in report_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1, (runs, tail)
    run = runs[0]
    assert (run / "exit_code").read_text().strip() == "0"

    # every plain test passed or skipped with a reason; passes came from both workers
    suite = ET.parse(run / "junit.xml").getroot()
    cases = list(suite.iter("testcase"))
    bad = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    ran = [c for c in cases if c.find("skipped") is None]
    assert not bad, (bad, tail)
    passed = re.findall(r"^\[(gw\d+)\] .*PASSED (suites/guest/\S+\[plain[^\]]*\])", out, re.M)
    workers = {w for w, _ in passed}
    assert workers == {"gw0", "gw1"}, (passed, tail)
    assert len(passed) == len(ran) > 0, (passed, [c.get("name") for c in ran])   # 13 of 13 here

    # each worker booted its own guest: two evidence folders, distinct ports, sockets, run folders
    guests = sorted(p.name for p in run.glob("guest-*") if (p / "qemu.argv.json").exists())
    assert guests == ["guest-plain-gw0", "guest-plain-gw1"], guests
    argvs = {g: json.loads((run / g / "qemu.argv.json").read_text()) for g in guests}
    ports = {g: re.findall(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-:22", " ".join(a)) for g, a in argvs.items()}
    assert all(len(p) == 1 for p in ports.values()), ports
    assert ports[guests[0]] != ports[guests[1]], ports
    qmp = {g: next(x for x in a if "qmp.sock" in x) for g, a in argvs.items()}
    serial = {g: next(x for x in a if "serial.sock" in x) for g, a in argvs.items()}
    assert len(set(qmp.values())) == 2 and len(set(serial.values())) == 2, (qmp, serial)
    folders = _guest_run_folders(report_dir)
    assert len(set(folders.values())) == 2, folders
    assert len({f.parent for f in folders.values()}) == 2, folders      # per-worker run roots too

    # both guests booted and stopped; nothing of theirs is left running or on disk
    for g in guests:
        times = json.loads((run / g / "times.json").read_text())
        assert "ssh_ready_s" in times and "serial_login_s" in times, (g, times)
    for g, folder in folders.items():
        assert reaper.running_from(folder.parent) == [], g
        assert reaper.running_from(run) == []
        assert not folder.exists(), f"{g}: run folder {folder} left behind"
