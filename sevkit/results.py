"""Result types shared by the serial console, SSH and every in-guest check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .errors import CommandFailed


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One command run in a guest (or on a host), over whichever transport."""

    cmd: str
    stdout: str
    exit_status: int
    duration: float
    stderr: str = ""
    transport: str = ""   # "serial", "ssh", "local"

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self) -> CommandResult:
        """Return self, or raise CommandFailed carrying this result."""
        if self.exit_status != 0:
            tail = (self.stderr or self.stdout).strip().splitlines()[-5:]
            raise CommandFailed(
                f"{self.transport or 'guest'} command {self.cmd!r} exited {self.exit_status}: "
                + (" | ".join(tail) if tail else "(no output)"),
                result=self,
                evidence={"cmd": self.cmd, "exit_status": self.exit_status,
                          "stdout": self.stdout[-2000:], "stderr": self.stderr[-2000:]})
        return self


class Shell(Protocol):
    """Anything that runs a shell command in a guest: SerialConsole, SshSession, test fakes."""

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult: ...
