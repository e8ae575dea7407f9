"""A host's state while the fleet runs, and its outcome afterwards (never lost in the merge)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    CONFORMANT = "conformant"            # the remote suite exited 0
    NON_CONFORMANT = "non-conformant"    # it exited 1: a requirement failed
    NOT_MEASURED = "not-measured"        # anything else: unreachable, timeout, dropped, killed, error


class Phase(StrEnum):
    QUEUED = "queued"
    RESERVING = "reserving"
    CONNECTING = "connecting"
    CHECKING = "checking"
    INSTALLING = "installing"
    RUNNING = "running"
    FETCHING = "fetching"
    CLEANING = "cleaning"
    DONE = "done"


@dataclass
class HostState:
    """Mutable, shared between a host job and the progress table (guarded by ``lock``)."""

    place: str
    tags: dict[str, str] = field(default_factory=dict)
    phase: Phase = Phase.QUEUED
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    status: Status | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def set_phase(self, phase: Phase) -> None:
        with self.lock:
            self.phase = phase

    def count(self, outcome: str) -> None:
        with self.lock:
            if outcome == "PASSED" or outcome == "XFAIL":
                self.passed += 1
            elif outcome == "FAILED" or outcome == "XPASS":
                self.failed += 1
            elif outcome == "ERROR":
                self.errors += 1
            elif outcome == "SKIPPED":
                self.skipped += 1

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started


@dataclass
class HostOutcome:
    place: str
    status: Status
    reason: str = ""
    address: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    suite_exit: int | None = None
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0
    last_phase: str = ""
    phases: list[tuple[str, float]] = field(default_factory=list)   # (phase, seconds since host start)
    report_dir: str | None = None          # hosts/<place>/ relative to the fleet folder
    remote_workdir: str | None = None
    remote_cleaned: bool | None = None     # None: never got that far
    leftovers: list[str] = field(default_factory=list)
    ssh_sessions: int = 0
    identity: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        d["phases"] = [{"phase": p, "at_s": round(t, 2)} for p, t in self.phases]
        d["elapsed_s"] = round(self.elapsed_s, 2)
        return d
