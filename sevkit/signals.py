"""SIGTERM handled like Ctrl-C, so every ``finally`` runs: QEMU groups are killed, dumps and
temporary folders removed, when a CI job is cancelled or a person runs ``kill``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_sigterm_as_interrupt() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread for the rest of the process."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """The same for the duration of a ``with`` block; the previous handler is restored after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interrupts_held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM noted, not raised, for the duration of a ``with`` block (the final report is
    written whole); the list yielded holds the signals that arrived. A second signal raises
    KeyboardInterrupt as before, so a person can still break a stuck block with a second Ctrl-C."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def _note(signum: int, frame: FrameType | None) -> None:
        got.append(signum)
        if len(got) > 1:
            raise KeyboardInterrupt(f"signal {signum} (second)")

    previous = {s: signal.signal(s, _note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
