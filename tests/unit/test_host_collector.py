"""The collector runs remotely as a bare script: stdlib only, never raises, JSON out."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sevkit.host import collector
from sevkit.host.rawinputs import RawInputs

SOURCE = Path(collector.__file__)


def test_collector_imports_only_the_standard_library() -> None:
    tree = ast.parse(SOURCE.read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)), "no relative imports"
    assert mods - {"__future__"} <= set(sys.stdlib_module_names)


@pytest.mark.parametrize("python", ["/usr/bin/python3", sys.executable])
def test_collector_source_runs_as_a_script_on_stdin(python: str) -> None:
    """What the SSH transport does remotely: `python3 -` with the source on stdin."""
    if not shutil.which(python):
        pytest.fail(f"{python} missing")
    proc = subprocess.run([python, "-"], input=SOURCE.read_bytes(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    raw = RawInputs(json.loads(proc.stdout))
    raw.validate()


def test_collect_records_failures_as_data() -> None:
    data = collector.collect()
    RawInputs(data).validate()
    json.dumps(data)   # serialisable as is
    for path, val in data["files"].items():
        assert ("text" in val) != ("error" in val), path
    assert data["dmesg"].get("source") in ("dmesg", "/dev/kmsg", "journalctl -k -b") or "error" in data["dmesg"]


def test_kmsg_reader_formats_like_dmesg() -> None:
    res = collector._kmsg(limit=4096)
    if "error" in res:
        pytest.skip(f"/dev/kmsg not readable here: {res['error']}")
    first = res["text"].splitlines()[0]
    assert first.startswith("[") and "]" in first
