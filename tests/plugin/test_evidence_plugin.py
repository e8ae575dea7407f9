"""The suite's reporting plugin: run folders, JUnit/allure output and the 0/1/2 exit codes.

Each case runs a small suite in a subprocess with the real fixtures/ plugins, so what is
checked is what a lab's CI sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

INI = "[pytest]\naddopts = -p no:cacheprovider\njunit_family = xunit1\n"
CONFTEST = 'pytest_plugins = ["fixtures.options", "fixtures.evidence"]\n'


def run_suite(tmp_path: Path, body: str, *args: str) -> tuple[int, str, Path]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_case.py").write_text(body)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr, tmp_path / "reports"


def test_all_pass_exits_0_and_writes_run_folder(tmp_path: Path) -> None:
    code, out, reports = run_suite(tmp_path, "def test_ok(artifacts):\n    artifacts.write_text('e.txt', 'x')\n")
    assert code == 0, out
    latest = reports / "latest"
    assert latest.is_symlink()
    run = latest.resolve()
    assert (run / "junit.xml").is_file()
    assert (run / "allure-results").is_dir() and any((run / "allure-results").iterdir())
    assert (run / "exit_code").read_text().strip() == "0"
    evidence = [p for p in run.iterdir() if p.is_dir() and p.name.startswith("test_case.py")]
    assert evidence and (evidence[0] / "e.txt").read_text() == "x"
    assert "sevkit verdict: CONFORMANT" in out
    # the JUnit file names the evidence folder of each test
    assert '<property name="evidence" value="' in (run / "junit.xml").read_text()


def test_failure_exits_1(tmp_path: Path) -> None:
    code, out, _ = run_suite(tmp_path, "def test_no():\n    assert False, 'requirement'\n")
    assert code == 1, out
    assert "NON-CONFORMANT" in out


def test_setup_error_exits_2_even_with_failures(tmp_path: Path) -> None:
    body = (
        "import pytest\n"
        "@pytest.fixture\n"
        "def broken():\n    raise RuntimeError('QEMU did not start')\n"
        "def test_err(broken):\n    pass\n"
        "def test_no():\n    assert False\n"
    )
    code, out, reports = run_suite(tmp_path, body)
    assert code == 2, out
    assert (reports / "latest" / "exit_code").read_text().strip() == "2"


def test_skips_alone_exit_0(tmp_path: Path) -> None:
    code, out, _ = run_suite(tmp_path, "import pytest\ndef test_s():\n    pytest.skip('CPUID bit 1 is 0')\n")
    assert code == 0, out


def test_bad_expect_profile_is_a_usage_error(tmp_path: Path) -> None:
    code, out, _ = run_suite(tmp_path, "def test_ok():\n    pass\n", "--sev-expect", "sev-xyz")
    assert code == 2, out
    assert "sev-xyz" in out and "Traceback" not in out


def test_bad_timeout_is_a_usage_error(tmp_path: Path) -> None:
    code, out, _ = run_suite(tmp_path, "def test_ok():\n    pass\n", "--sev-timeout-boot", "soon")
    assert code == 2, out
    assert "soon" in out


def test_nothing_collected_exits_2(tmp_path: Path) -> None:
    code, out, _ = run_suite(tmp_path, "def helper():\n    pass\n")
    assert code == 2, out
    assert "no tests were collected" in out


@pytest.mark.parametrize("workers", ["2"])
def test_xdist_workers_share_one_run_folder(tmp_path: Path, workers: str) -> None:
    body = "".join(f"def test_{i}(artifacts):\n    artifacts.write_text('w.txt', '{i}')\n" for i in range(4))
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_case.py").write_text(body)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", workers], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [p for p in (tmp_path / "reports").iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1, runs
    folders = [p for p in runs[0].iterdir() if p.is_dir() and p.name.startswith("test_case.py")]
    assert len(folders) == 4
    json.dumps([str(f) for f in folders])
