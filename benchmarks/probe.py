"""Host probe speed: median local probe (collect + grade) and, when sshd is available, SSH probe.

The issue asks for a local probe "well under a second"; this measures it (not a timed test).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sevkit.host import SshStats, collect_local, collect_ssh, grade, parse_target

RUNS = 15
SSH_RUNS = 5


def _stats(samples: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(samples), 4), "min_s": round(min(samples), 4),
            "max_s": round(max(samples), 4)}


def run(out_dir: Path) -> dict[str, Any]:
    collect_s, grade_s, total_s = [], [], []
    grade(collect_local())  # warm imports and page cache
    for _ in range(RUNS):
        t0 = time.perf_counter()
        raw = collect_local()
        t1 = time.perf_counter()
        grade(raw)
        t2 = time.perf_counter()
        collect_s.append(t1 - t0)
        grade_s.append(t2 - t1)
        total_s.append(t2 - t0)
    result: dict[str, Any] = {"runs": RUNS, "local_total": _stats(total_s), "local_collect": _stats(collect_s),
                              "grade": _stats(grade_s)}
    result["ssh"] = _ssh(out_dir)
    return result


def _ssh(out_dir: Path) -> dict[str, Any]:
    if os.geteuid() != 0:
        return {"skipped": "needs root to run a private sshd with root login"}
    from ._sshd import SshdUnavailable, private_sshd

    samples: list[float] = []
    commands = connects = 0
    try:
        with tempfile.TemporaryDirectory(prefix="sevkit-bench-sshd-") as tmp, private_sshd(Path(tmp)) as server:
            for _ in range(SSH_RUNS):
                st = SshStats()
                t0 = time.perf_counter()
                grade(collect_ssh(parse_target(server.target), str(server.key), known_hosts=str(server.known_hosts),
                                  stats=st))
                samples.append(time.perf_counter() - t0)
                commands += st.commands
                connects += st.connects
            sessions = server.sessions()
    except SshdUnavailable as exc:
        return {"skipped": str(exc)}
    return {"runs": SSH_RUNS, **_stats(samples), "remote_commands_per_probe": commands / SSH_RUNS,
            "connections_per_probe": connects / SSH_RUNS, "sshd_sessions_seen": sessions}
