"""`sevkit analyze` through the real command line, and the one-line error contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO / "tests" / "data" / "realdata"


def realdata(rel: str) -> Path:
    p = REALDATA / rel
    if not p.is_file():
        pytest.fail(f"real capture missing: {p.resolve()} (expected tests/data/realdata in the clone)")
    return p


def sevkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sevkit", "analyze", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], path: Path | str, words: str) -> None:
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sevkit: error: ")
    assert str(path) in lines[0]
    assert words in lines[0].split(str(path), 1)[1]     # the reason, not a word of the path
    assert "Traceback" not in proc.stderr
