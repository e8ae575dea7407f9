"""Scanner speed: ``sevkit scan`` with 2 needles vs ``grep -c -a -F`` with 1 needle, same 2 GiB file.

The file (random bytes, like ciphertext, with both needles planted a few times) is written to a
scratch folder, read once so that it sits in the page cache (checked with ``fincore`` when
available), then the two commands run alternately, ``REPS`` times each, as whole processes
(interpreter start-up included). Medians are reported. The file is deleted afterwards.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sevkit.memory.scan import scan_file

SIZE = 2 << 30
REPS = 7
REPO = Path(__file__).resolve().parents[1]


def _needle(rng: random.Random) -> bytes:
    # grep takes the pattern from argv (no NUL) and splits it at newlines
    while True:
        n = rng.randbytes(32)
        if b"\n" not in n and b"\0" not in n:
            return n


def _write(path: Path, needles: list[bytes], rng: random.Random) -> list[int]:
    block = 64 << 20
    where = [*sorted(rng.randrange(0, SIZE - 64) for _ in range(6)), block - 10, SIZE - 32]
    with open(path, "wb") as fh:
        for _ in range(SIZE // block):
            fh.write(os.urandom(block))
        for i, pos in enumerate(where):
            fh.seek(pos)
            fh.write(needles[i % 2])
    return where


def _cached_fraction(path: Path) -> float | None:
    if not shutil.which("fincore"):
        return None
    out = subprocess.run(["fincore", "-b", "-n", "-o", "RES,SIZE", str(path)], capture_output=True, text=True)
    try:
        res, size = (int(x) for x in out.stdout.split()[:2])
        return res / size
    except ValueError:
        return None


def _time(cmd: list[str | bytes], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=env, timeout=600)
    dt = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        raise RuntimeError(f"{cmd[0]!r} exited {p.returncode}: {p.stderr[-300:]!r}")
    return dt, p.stdout.decode(errors="replace")


def run(out_dir: Path) -> dict[str, Any]:
    rng = random.Random()
    needles = [_needle(rng), _needle(rng)]
    scratch = Path(tempfile.mkdtemp(prefix="sevkit-bench-scan-", dir="/var/tmp"))
    f = scratch / "2GiB.bin"
    env = dict(os.environ, LC_ALL="C")
    load_start = os.getloadavg()[0]
    try:
        t0 = time.perf_counter()
        where = _write(f, needles, rng)
        write_s = time.perf_counter() - t0
        with open(f, "rb") as fh:   # pull it into the page cache
            while fh.read(64 << 20):
                pass
        nhex = ["--needle", needles[0].hex(), "--needle", needles[1].hex()]
        cmds: dict[str, list[str | bytes]] = {
            "grep_1_needle": ["grep", "-c", "-a", "-F", "-e", needles[0], str(f)],
            "sevkit_scan_cli": [sys.executable, "-m", "sevkit", "scan", "--json", "--no-entropy", str(f), *nhex],
            "sevkit_scan_module": [sys.executable, "-m", "sevkit.cli.scan", "--json", "--no-entropy", str(f), *nhex],
        }
        times: dict[str, list[float]] = {k: [] for k in [*cmds, "scanner_inprocess"]}
        grep_count = ours_counts = None
        for _ in range(REPS):   # alternate, so that all see the same machine state
            for name, cmd in cmds.items():
                dt, out = _time(cmd, env)
                times[name].append(dt)
                if name == "grep_1_needle":
                    grep_count = int(out.strip())
                else:
                    ours_counts = json.loads(out)["counts"]
            t0 = time.perf_counter()
            r = scan_file(f, needles, entropy_samples=0)
            times["scanner_inprocess"].append(time.perf_counter() - t0)
            if list(r.counts.values()) != list((ours_counts or {}).values()):
                raise RuntimeError("in-process and CLI counts differ")
        one_worker = scan_file(f, needles, entropy_samples=0, workers=1).seconds
        cached = _cached_fraction(f)
        tiny = scratch / "tiny.bin"
        tiny.write_bytes(b"x" * 64)
        startup = statistics.median(_time([sys.executable, "-m", "sevkit", "scan", "--json", "--no-entropy",
                                           str(tiny), "--needle", "00"], env)[0] for _ in range(3))
        med = {k: statistics.median(v) for k, v in times.items()}
        g = med["grep_1_needle"]
        expected = [sum(1 for i in range(len(where)) if i % 2 == k) for k in (0, 1)]
        return {
            "file_bytes": SIZE,
            "file_content": "random bytes, needles planted",
            "page_cache_resident_fraction": cached,
            "write_seconds": round(write_s, 2),
            "reps": REPS,
            "cores": len(os.sched_getaffinity(0)),
            "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "median_s": {k: round(v, 3) for k, v in med.items()},
            "gbps": {k: round(SIZE / v / 1e9, 2) for k, v in med.items()},
            "scanner_2_needles_at_least_as_fast_as_grep_1_needle": med["scanner_inprocess"] <= g,
            "module_cli_at_least_as_fast_as_grep": med["sevkit_scan_module"] <= g,
            "dispatcher_cli_at_least_as_fast_as_grep": med["sevkit_scan_cli"] <= g,
            "scanner_inprocess_1_worker_s": round(one_worker, 3),
            "sevkit_cli_startup_s": round(startup, 3),
            "loadavg_1min_at_start": round(load_start, 2),
            "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
            "counts_ok": grep_count == expected[0] and ours_counts is not None
            and list(ours_counts.values()) == expected,
            "grep_count": grep_count,
            "expected_counts": expected,
            "commands": {"grep_1_needle": "LC_ALL=C grep -c -a -F -e NEEDLE1 FILE",
                         "sevkit_scan_cli": "python -m sevkit scan --json --no-entropy FILE --needle N1 --needle N2",
                         "sevkit_scan_module": "python -m sevkit.cli.scan (same arguments, no dispatcher)",
                         "scanner_inprocess": "sevkit.memory.scan.scan_file(FILE, [N1, N2]) (2 workers)"},
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
