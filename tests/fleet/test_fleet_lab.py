"""The fleet end to end on a real labgrid coordinator and exporter with namespace hosts
(benchmarks/_fleetlab.py): each host a network namespace with its own sshd, running the real
suite (suites/host) against this machine. Marker ``fleet``; needs root."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.fleet


def _result(tmp: Path) -> tuple[Path, dict[str, Any]]:
    folders = sorted((tmp / "reports").glob("fleet-*"))
    assert len(folders) == 1, folders
    return folders[0], json.loads((folders[0] / "result.json").read_text())


def _host(result: dict[str, Any], place: str) -> dict[str, Any]:
    return next(h for h in result["hosts"] if h["place"] == place)


def _assert_lab_clean(lab: Any, settle: float = 20) -> None:
    """No reservation left, no place locked, nothing but sshd in any namespace."""
    from sevkit.fleet.lab import Lab

    end = time.monotonic() + settle
    while True:
        strays = {h.place: h.stray_pids() for h in lab.hosts if h.netns}
        strays = {k: v for k, v in strays.items() if v}
        if not strays or time.monotonic() > end:
            break
        time.sleep(0.5)
    cmdlines = {k: [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for p in v
                    if Path(f"/proc/{p}/cmdline").exists()] for k, v in strays.items()}
    assert not strays, f"processes left in the namespaces: {cmdlines}"
    with Lab(lab.coordinator) as client:
        assert client.reservations() == []
        locked = {n: p.acquired for n, p in client.places().items() if p.acquired}
        assert locked == {}


def test_all_conformant(fleet: Any, nslab: Any, tmp_path: Path) -> None:
    """Two genoa hosts, installed from this checkout's wheels (offline), run suites/host: exit 0;
    each host's report folder is fetched and matches the host's sha256 list; merged outputs."""
    fp = fleet("--match", "gen=genoa", "--parallel", "2")
    rc = fp.wait()
    assert rc == 0, "\n".join(fp.lines[-30:])
    folder, result = _result(tmp_path)
    assert result["complete"] is True and result["exit_code"] == 0
    assert [h["place"] for h in result["hosts"]] == ["h00", "h01"]
    for h in result["hosts"]:
        assert h["status"] == "conformant" and h["suite_exit"] == 0
        assert h["passed"] > 0 and h["failed"] == 0 and h["errors"] == 0
        assert h["identity"].get("kernel"), h["identity"]
        assert h["remote_cleaned"] is True and h["leftovers"] == []
        assert not Path(h["remote_workdir"]).exists()   # the namespaces share this filesystem
        hostdir = folder / h["report_dir"]
        sums = (hostdir / "SHA256SUMS.host").read_text().splitlines()
        assert len(sums) >= 4
        for line in sums:
            digest, _, name = line.partition("  ")
            assert hashlib.sha256((hostdir / name).read_bytes()).hexdigest() == digest
        assert (hostdir / "exit_code").read_text().strip() == "0"
    # host x requirement matrix: every requirement has both hosts
    assert result["matrix"] and all(set(row) == {"h00", "h01"} for row in result["matrix"].values())
    suites = ET.parse(folder / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["h00", "h01"]
    # each host's own testcases, unchanged in number; each names a requirement of the matrix (result.json
    # aggregates a requirement's variants, so the matrix has requirement rows, JUnit keeps test cases)
    for s, h in zip(suites, result["hosts"], strict=True):
        own = ET.parse(folder / h["report_dir"] / "junit.xml").getroot().findall(".//testcase")
        assert len(s.findall(".//testcase")) == len(own) > 0
        reqs = {p.get("value") for p in s.iter("property") if p.get("name") == "req"}
        assert reqs and reqs <= set(result["matrix"]), sorted(reqs - set(result["matrix"]))[:5]
    page = (folder / "report.html").read_text()
    assert "hosts/h00/report.html" in page and "conformant" in page   # each host's own page
    assert (folder / "exit_code").read_text().strip() == "0"
    _assert_lab_clean(nslab)


def test_non_conformant_host(fleet: Any, nslab: Any, tmp_path: Path) -> None:
    """A profile the host cannot meet (--profile sev on a machine without SEV): exit 1, the host
    is non-conformant with its failures, not an error."""
    fp = fleet("--match", "name=h02", "--profile", "sev")
    rc = fp.wait()
    assert rc == 1, "\n".join(fp.lines[-30:])
    _, result = _result(tmp_path)
    h = _host(result, "h02")
    assert h["status"] == "non-conformant" and h["suite_exit"] == 1 and h["failed"] > 0
    assert result["profile"] == "sev"
    assert any(outcome == "failed" for row in result["matrix"].values() for outcome in row.values())
    _assert_lab_clean(nslab)


def test_unreachable_host_is_not_measured(fleet: Any, nslab: Any, tmp_path: Path) -> None:
    """h03's address answers nothing: that host is not measured (exit 2), h02's outcome is kept."""
    fp = fleet("--match", "gen=milan", "--match", "name=h02", "--connect-timeout", "4")
    rc = fp.wait()
    assert rc == 2, "\n".join(fp.lines[-30:])
    folder, result = _result(tmp_path)
    assert _host(result, "h02")["status"] == "conformant"
    h3 = _host(result, "h03")
    assert h3["status"] == "not-measured" and "10.213.3.2" in h3["reason"] and h3["report_dir"] is None
    suites = {s.get("name"): s for s in ET.parse(folder / "junit.xml").getroot().findall("testsuite")}
    assert suites["h03"].find("testcase/error") is not None
    _assert_lab_clean(nslab)


def test_link_dropped_mid_run(fleet: Any, nslab: Any, tmp_path: Path) -> None:
    """h01's link goes down while it installs: the fleet notices the silence within
    --link-timeout, marks h01 not measured, and h01's sshd ends the orphaned session so the
    remote command is stopped (nothing left running in the namespace)."""
    host = nslab.host("h01")
    fp = fleet("--match", "name=h01", "--link-timeout", "6")
    try:
        fp.wait_for_line("h01                      installing", timeout=120)
        time.sleep(1.0)
        host.link(up=False)
        rc = fp.wait(timeout=120)
    finally:
        host.link(up=True)
    assert rc == 2, "\n".join(fp.lines[-30:])
    _, result = _result(tmp_path)
    h = _host(result, "h01")
    assert h["status"] == "not-measured"
    assert "silent" in h["reason"] or "dropped" in h["reason"] or "failed" in h["reason"], h["reason"]
    assert h["remote_cleaned"] is False and h["leftovers"]
    _assert_lab_clean(nslab, settle=30)
    subprocess.run(["rm", "-rf", h["remote_workdir"]], check=True)   # what a lab's clean-up would do


def test_place_reserved_by_someone_else(fleet: Any, nslab: Any, tmp_path: Path) -> None:
    """Another labgrid user holds h02: the fleet queues a reservation, waits --reserve-timeout,
    then reports h02 as not measured (held by whom) and leaves no reservation behind."""
    client = [str(Path(sys.executable).parent / "labgrid-client"), "-x", nslab.coordinator]
    env = {"LG_USERNAME": "someone-else", "PATH": "/usr/bin:/bin"}
    # what a colleague does: reserve the place, then lock it with the reservation's token
    out = subprocess.run([*client, "reserve", "--wait", "--shell", "name=h02"], check=True, env=env,
                         capture_output=True, text=True, timeout=60).stdout
    token = out.strip().rpartition("LG_TOKEN=")[2]
    subprocess.run([*client, "-p", f"+{token}", "lock"], check=True, env=env, capture_output=True, timeout=60)
    try:
        fp = fleet("--match", "name=h02", "--reserve-timeout", "3")
        rc = fp.wait()
    finally:
        subprocess.run([*client, "-p", "h02", "unlock"], check=True, env=env, capture_output=True, timeout=60)
        subprocess.run([*client, "cancel-reservation", token], check=True, env=env, capture_output=True, timeout=60)
    assert rc == 2, "\n".join(fp.lines[-30:])
    _, result = _result(tmp_path)
    h = _host(result, "h02")
    assert h["status"] == "not-measured" and "reservation timeout" in h["reason"] and "someone-else" in h["reason"]
    _assert_lab_clean(nslab)


def test_sigterm_stops_everything(fleet: Any, nslab: Any, tmp_path: Path) -> None:
    """SIGTERM to the controller while a host's suite runs a QEMU guest: the remote suite is
    stopped (no QEMU or pytest left in any namespace), the queued host never starts, every
    reservation and lock is released, and the fleet report says the run is incomplete."""
    fp = fleet("--match", "gen=genoa", "--parallel", "1",
               pytest_args=("suites/guest/test_guest_launch.py", "-k", "test_query_sev and plain"))
    deadline = time.monotonic() + 180
    qemu_host = None
    while qemu_host is None and time.monotonic() < deadline and fp.proc.poll() is None:
        for h in nslab.hosts[:2]:
            for pid in h.stray_pids():
                try:
                    if b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        qemu_host = h
                except OSError:
                    pass
        time.sleep(0.2)
    assert qemu_host is not None, "no QEMU started in a namespace"
    fp.proc.terminate()
    rc = fp.wait(timeout=180)
    assert rc == 2, "\n".join(fp.lines[-30:])
    _, result = _result(tmp_path)
    assert result["complete"] is False and any("interrupted" in n for n in result["notes"])
    stopped = _host(result, qemu_host.place)
    assert stopped["status"] == "not-measured" and "interrupted" in stopped["reason"]
    assert stopped["remote_cleaned"] is True and not Path(stopped["remote_workdir"]).exists()
    other = next(h for h in result["hosts"] if h["place"] != qemu_host.place)
    assert other["status"] == "not-measured" and "interrupted" in other["reason"]
    assert "INCOMPLETE" in " ".join(fp.lines)
    _assert_lab_clean(nslab)
    assert not [p for h in nslab.hosts if h.netns for p in h.pids()
                if b"qemu" in Path(f"/proc/{p}/cmdline").read_bytes()]
