"""Run a Python script inside a guest, over any Shell (serial console or SSH): the one way the
in-guest probe, the attestation fetcher and the memory planter ship their scripts.

The script travels base64-encoded inside a single shell command, so no quoting can break it.
The command may be long: SerialConsole.run stages commands beyond the tty's line limit through a
guest file in short, acknowledged pieces, and SSH has no such limit, so callers never chunk.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence

from .results import CommandResult, Shell


def _blob(script: str) -> str:
    return base64.b64encode(script.encode()).decode()


def python_command(script: str, args: Sequence[str] = (), *, python: str = "python3") -> str:
    """A shell command that runs ``script`` with ``args`` (piped to ``python -``, no file left behind)."""
    argv = "".join(f" {shlex.quote(a)}" for a in args)
    return f"echo {_blob(script)} | base64 -d | {python} -{argv}"


def detached_python_command(script: str, path: str, args: Sequence[str] = (), *, python: str = "python3") -> str:
    """A shell command that writes ``script`` to the guest file ``path`` and starts it in its own
    session with every stream detached, so it outlives the shell (qemu-tcg-notes P3). Its
    command line names ``path``, so ``ps`` finds it."""
    argv = "".join(f" {shlex.quote(a)}" for a in args)
    q = shlex.quote(path)
    return (f"echo {_blob(script)} | base64 -d > {q} && "
            f"setsid -f {python} {q}{argv} </dev/null >/dev/null 2>&1")


def run_python(shell: Shell, script: str, args: Sequence[str] = (), *, timeout: float | None = None,
               python: str = "python3") -> CommandResult:
    """Run ``script`` in the guest behind ``shell`` and return its result (not checked)."""
    return shell.run(python_command(script, args, python=python), timeout=timeout)
