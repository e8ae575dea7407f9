"""Run many ``sevkit`` command lines, each in its own process with a memory limit and a deadline.

Used by test_hostile_cli.py as ``python hostile_runner.py < cases.json > results.json``. It imports
the CLI once, then forks one child per case (so a case costs milliseconds, not an interpreter
start-up): the child sets RLIMIT_AS, points stdin at /dev/null (or the case's stdin file) and
stdout/stderr at files, runs ``sevkit.cli.main(argv)`` exactly as ``python -m sevkit`` does, and
exits with its code. The parent keeps up to ``workers`` children running, SIGKILLs any that passes
its deadline, and reports per case: exit code (or the killing signal), stderr, wall seconds and
the child's peak RSS (``wait4`` rusage).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from typing import Any


def _child(case: dict[str, Any], out: str, err: str, as_limit: int) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
        stdin = os.open(case.get("stdin") or os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(os.open(out, os.O_WRONLY | os.O_TRUNC), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_TRUNC), 2)
        if case.get("cwd"):
            os.chdir(case["cwd"])
        from sevkit.cli import main
        try:
            code = main(case["argv"])
        except SystemExit as exc:         # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except BaseException:                 # an escaped exception is exactly what the harness looks for
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(99)


def run(cases: list[dict[str, Any]], *, workers: int, timeout: float, as_limit: int) -> list[dict[str, Any]]:
    import sevkit.attestation.verdict  # noqa: F401  (cryptography, the heaviest import: loaded once)
    from sevkit.cli import build_parser
    build_parser()                        # imports every subcommand once, before forking

    results: list[dict[str, Any] | None] = [None] * len(cases)
    running: dict[int, tuple[int, float, str, str]] = {}
    pending = list(range(len(cases)))
    scratch = tempfile.mkdtemp(prefix="sevkit-hostile-")
    while pending or running:
        while pending and len(running) < workers:
            i = pending.pop(0)
            out, err = os.path.join(scratch, f"{i}.out"), os.path.join(scratch, f"{i}.err")
            for path in (out, err):
                open(path, "wb").close()
            pid = os.fork()
            if pid == 0:
                _child(cases[i], out, err, as_limit)
            running[pid] = (i, time.monotonic(), out, err)
        pid, status, usage = os.wait4(-1, os.WNOHANG)
        if pid == 0:
            now = time.monotonic()
            for cpid, (_i, started, _o, _e) in list(running.items()):
                if now - started > timeout:
                    os.kill(cpid, signal.SIGKILL)
            time.sleep(0.002)
            continue
        i, started, out, err = running.pop(pid)
        with open(err, "rb") as fh:
            stderr = fh.read(65536).decode("utf-8", "replace")
        with open(out, "rb") as fh:
            stdout = fh.read(4096).decode("utf-8", "replace")
        results[i] = {"name": cases[i]["name"], "code": os.waitstatus_to_exitcode(status),
                      "stderr": stderr, "stdout_head": stdout, "seconds": round(time.monotonic() - started, 3),
                      "maxrss_kib": usage.ru_maxrss}
        os.unlink(out)
        os.unlink(err)
    os.rmdir(scratch)
    return [r for r in results if r is not None]


if __name__ == "__main__":
    spec = json.load(sys.stdin)
    json.dump(run(spec["cases"], workers=spec["workers"], timeout=spec["timeout"], as_limit=spec["as_limit"]),
              sys.stdout)
