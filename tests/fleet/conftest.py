"""A real labgrid lab for the fleet self-tests: coordinator, exporter and four places.

h00, h01 (gen=genoa) and h02 (gen=turin) are network namespaces with their own sshd;
h03 (gen=milan) has a place and a NetworkService but nothing answers at its address.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def nslab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from benchmarks._fleetlab import LabUnavailable, fleet_lab

    tags = [{"gen": "genoa"}, {"gen": "genoa"}, {"gen": "turin"}, {"gen": "milan"}]
    try:
        with fleet_lab(tmp_path_factory.mktemp("fleetlab"), tags, unreachable={3}) as lab:
            yield lab
    except LabUnavailable as exc:
        pytest.fail(f"cannot stand up the fleet lab: {exc}")


class FleetProc:
    """A running ``sevkit fleet``; a thread collects its output lines as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, timeout: float = 240) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            # PYTHONFAULTHANDLER: SIGABRT makes the hung controller print every thread's stack
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout=30)
            self._reader.join(timeout=10)
            tail = "\n".join(self.lines[-80:])
            raise AssertionError(f"sevkit fleet still running after {timeout}s:\n{tail}") from exc
        self._reader.join(timeout=10)
        return self.proc.returncode

    def wait_for_line(self, needle: str, timeout: float) -> str:
        """Until a line contains ``needle`` (the fleet prints one progress line per phase change)."""
        end = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < end:
            for line in self.lines[seen:]:
                if needle in line:
                    return line
            seen = len(self.lines)
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {needle!r} within {timeout}s; got: {self.lines[-15:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)


def start_fleet(lab: object, tmp: Path, *args: str, pytest_args: tuple[str, ...] = ("suites/host",)) -> FleetProc:
    """``sevkit fleet`` as a separate process (what a CI job runs), stdout+stderr merged."""
    argv = [sys.executable, "-m", "sevkit", "fleet", "--coordinator", lab.coordinator,  # type: ignore[attr-defined]
            "--identity", str(lab.user_key), "--known-hosts", str(lab.known_hosts),  # type: ignore[attr-defined]
            "--report-dir", str(tmp / "reports"), *args, "--", *pytest_args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return FleetProc(proc)


@pytest.fixture
def fleet(nslab: object, tmp_path: Path) -> Iterator[object]:
    started: list[FleetProc] = []

    def _run(*args: str, pytest_args: tuple[str, ...] = ("suites/host",)) -> FleetProc:
        fp = start_fleet(nslab, tmp_path, *args, pytest_args=pytest_args)
        started.append(fp)
        return fp
    yield _run
    for fp in started:
        fp.stop()
