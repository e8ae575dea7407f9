"""Stop every QEMU this process started, on every path.

Two nets: a process-wide registry killed from ``atexit`` (Ctrl-C, an exception escaping a
fixture), and ``reap(run_root)``, which finds leftovers through their pidfiles (a session
finalizer). A pid is only killed if its command line names that very pidfile, so a recycled
pid never hits an unrelated process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path

_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_LOCK = threading.Lock()


def register(proc: subprocess.Popen[bytes]) -> None:
    with _LOCK:
        _LIVE[proc.pid] = proc


def unregister(proc: subprocess.Popen[bytes]) -> None:
    with _LOCK:
        _LIVE.pop(proc.pid, None)


def kill_group(pid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal QEMU's process group (QEMU leads its own session). False if it is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False


def kill_registered() -> list[int]:
    """Kill and reap every QEMU still registered in this process; return their pids."""
    with _LOCK:
        procs = list(_LIVE.values())
        _LIVE.clear()
    killed = []
    for proc in procs:
        if proc.poll() is None:
            kill_group(proc.pid)
            killed.append(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    return killed


atexit.register(kill_registered)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def reap(run_root: Path) -> list[int]:
    """Kill any QEMU whose pidfile lies in ``run_root/*/qemu.pid`` and which is still alive."""
    killed: list[int] = []
    if not run_root.is_dir():
        return killed
    for pidfile in sorted(run_root.glob("*/qemu.pid")):
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        if str(pidfile) in _cmdline(pid) and kill_group(pid):
            killed.append(pid)
            # our own child: reap it so no zombie is left (PID 1 here does not reap)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    return killed


def running_from(run_root: Path) -> list[int]:
    """Pids of live QEMU processes whose command line points into ``run_root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            args = _cmdline(int(entry.name))
            if args and "qemu" in Path(args[0]).name and any(str(run_root) in a for a in args):
                found.append(int(entry.name))
    return found
