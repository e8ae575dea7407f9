"""sevkit.guestpy, the one in-guest Python runner: the commands it builds are run here by bash
(a FAKE guest: this host's shell and python) to prove the script and its arguments arrive intact."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sevkit.guestpy import detached_python_command, python_command, run_python
from sevkit.results import CommandResult

SCRIPT = "import sys\nprint('argv', sys.argv[1:])  # a quote ' and a newline must survive\n"


class BashShell:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        self.commands.append(cmd)
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        return CommandResult(cmd, p.stdout, p.returncode, 0.0, p.stderr, "fake-local")


def test_script_and_arguments_arrive_intact() -> None:
    shell = BashShell()
    res = run_python(shell, SCRIPT, ["a b", "it's", "$HOME"], timeout=30, python=sys.executable)
    assert res.exit_status == 0 and res.stdout == "argv ['a b', \"it's\", '$HOME']\n"
    assert len(shell.commands) == 1 and "\n" not in shell.commands[0]


def test_command_is_one_line_without_quotes_around_the_script() -> None:
    cmd = python_command(SCRIPT)
    assert cmd.startswith("echo ") and cmd.endswith("| base64 -d | python3 -") and "'" not in cmd


def test_detached_script_outlives_the_shell_and_is_named_by_its_path(tmp_path: Path) -> None:
    done = tmp_path / "done"
    script = f"import sys, time\ntime.sleep(0.2)\nopen({str(done)!r}, 'w').write(sys.argv[1])\n"
    path = tmp_path / "sevkit-test.py"
    cmd = detached_python_command(script, str(path), ["ok"], python=sys.executable)
    assert subprocess.run(["bash", "-c", cmd], timeout=30).returncode == 0   # returns at once
    deadline = time.monotonic() + 20
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done.read_text() == "ok" and path.read_text() == script
