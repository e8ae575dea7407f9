"""Deadlines that are passed down: every blocking call takes one, nothing loops without one."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .errors import GuestTimeout


@dataclass
class Deadline:
    """A point in monotonic time, ``seconds`` from creation.

    ``remaining`` never goes below 0; ``check(what)`` raises GuestTimeout once expired.
    """

    seconds: float
    start: float = field(default_factory=time.monotonic)

    @property
    def end(self) -> float:
        return self.start + self.seconds

    @property
    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def cap(self, seconds: float) -> float:
        """The smaller of ``seconds`` and what is left: a per-attempt timeout."""
        return min(seconds, self.remaining)

    def check(self, what: str) -> None:
        """Raise GuestTimeout naming ``what`` if the deadline has passed."""
        if self.expired:
            raise GuestTimeout(f"{what}: deadline of {self.seconds:.0f}s expired",
                               evidence={"deadline_s": self.seconds, "elapsed_s": round(self.elapsed, 2)})
