"""The live table: host, phase, passed, failed, errors, elapsed.

On a terminal it is redrawn in place every second; elsewhere (CI logs, a pipe) one line is
printed per phase change, so a log shows each host's timeline without redraw noise.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .outcome import HostState

HEADER = f"{'host':<24} {'phase':<11} {'passed':>6} {'failed':>6} {'errors':>6} {'elapsed':>8}  status"


def row(s: HostState) -> str:
    with s.lock:
        status = str(s.status) if s.status else ""
        return (f"{s.place[:24]:<24} {s.phase!s:<11} {s.passed:>6} {s.failed:>6} {s.errors:>6} "
                f"{s.elapsed:>7.1f}s  {status}")


class Progress:
    def __init__(self, states: list[HostState], out: TextIO | None = None, *, live: bool | None = None) -> None:
        self.states = states
        self.out = out or sys.stderr
        self.live = self.out.isatty() if live is None else live
        self._drawn = 0
        self._last: dict[str, str] = {}

    def update(self) -> None:
        if self.live:
            lines = [HEADER, *(row(s) for s in self.states)]
            if self._drawn:
                self.out.write(f"\x1b[{self._drawn}F")
            self.out.write("".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn = len(lines)
        else:
            for s in self.states:
                key = f"{s.phase}/{s.status}"
                if self._last.get(s.place) != key:
                    if not self._last:
                        self.out.write(HEADER + "\n")
                    self._last[s.place] = key
                    self.out.write(row(s) + "\n")
        self.out.flush()

    def final(self) -> None:
        self.update()
        if not self.live:
            self.out.write(HEADER + "\n" + "".join(row(s) + "\n" for s in self.states))
            self.out.flush()
