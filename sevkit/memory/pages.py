"""What the host sees at the exact guest-physical pages that hold the planted secret.

The planter reports the guest-physical address of every copy (sevkit.memory.plant); here each of
those pages is read through one host view and classified:

    secret        the planted plaintext is in the page
    zero          the page reads as zeros (e.g. SEV-SNP with guest_memfd: QEMU's shared view)
    ones          the page reads as 0xFF bytes (e.g. SEV-SNP ciphertext hiding)
    ciphertext    readable, high entropy (>= HIGH_ENTROPY bits/byte), no secret
    plaintext     readable, low entropy, no secret
    absent        the view does not contain the page (not in the ELF's PT_LOAD headers, not mapped)
    unreadable    the read failed (the error is kept)
    not-examined  the page moved in the guest while the host read, so no view of it is trusted

Views: ``procmem`` (/proc/<qemu pid>/mem at the RAM block's host address), ``elf`` (a
dump-guest-memory file and its segments), ``pmemsave`` (QMP pmemsave of each page). Pure reading and
classification; the verdict per outcome is sevkit.memory.judge.judge_pages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DumpError
from .scan import HIGH_ENTROPY, Segment, page_entropy

PAGE = 4096
OUTCOMES = ("secret", "zero", "ones", "ciphertext", "plaintext", "absent", "unreadable", "not-examined")


@dataclass(frozen=True, slots=True)
class PageView:
    """One page as one method saw it."""

    gpa: int
    holder: str          # "anon" (the planter's mlock'ed buffer) or "tmpfs" (its page-cache file)
    method: str
    outcome: str
    detail: str = ""     # the read error, the entropy, why it was not examined
    entropy: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"gpa": f"{self.gpa:#x}", "holder": self.holder, "method": self.method,
                               "outcome": self.outcome}
        if self.entropy is not None:
            out["entropy"] = round(self.entropy, 3)
        if self.detail:
            out["detail"] = self.detail
        return out


def classify(data: bytes, needle: bytes) -> tuple[str, float | None]:
    """The outcome for one page's bytes (see the module docstring)."""
    if needle in data:
        return "secret", None
    if not data.strip(b"\0"):
        return "zero", 0.0
    if not data.strip(b"\xff"):
        return "ones", 0.0
    h = page_entropy(data)
    return ("ciphertext" if h >= HIGH_ENTROPY else "plaintext"), h


def _view(gpa: int, holder: str, method: str, data: bytes | None, needle: bytes, why: str = "") -> PageView:
    if data is None:
        return PageView(gpa, holder, method, "absent", why)
    if len(data) < PAGE:
        return PageView(gpa, holder, method, "unreadable", f"short read: {len(data)} of {PAGE} bytes")
    outcome, h = classify(data, needle)
    return PageView(gpa, holder, method, outcome, "", h)


def examine_reader(method: str, pages: Mapping[int, str], needle: bytes,
                   read: Callable[[int], bytes | None]) -> list[PageView]:
    """Classify each page via ``read(gpa) -> bytes | None`` (None: not in this view; OSError: unreadable)."""
    out: list[PageView] = []
    for gpa, holder in sorted(pages.items()):
        try:
            out.append(_view(gpa, holder, method, read(gpa), needle, "not in this view"))
        except OSError as exc:
            out.append(PageView(gpa, holder, method, "unreadable", f"{exc.strerror or exc}"))
    return out


def segment_reader(path: Path, segments: Sequence[Segment]) -> Callable[[int], bytes | None]:
    """Pages of a dump file whose ``segments`` map file offsets to guest-physical addresses."""
    def read(gpa: int) -> bytes | None:
        for s in segments:
            if s.gpa <= gpa and gpa + PAGE <= s.gpa + s.size:
                with open(path, "rb") as fh:
                    fh.seek(s.offset + gpa - s.gpa)
                    return fh.read(PAGE)
        return None
    return read


def procmem_reader(pid: int, hva_of: Callable[[int], int | None]) -> Callable[[int], bytes | None]:
    """Pages of /proc/<pid>/mem; ``hva_of(gpa)`` is QEMU's host address for the page (None: not RAM)."""
    def read(gpa: int) -> bytes | None:
        hva = hva_of(gpa)
        if hva is None:
            return None
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        try:
            return os.pread(fd, PAGE, hva)
        finally:
            os.close(fd)
    return read


def moved(pages: Mapping[int, str], before: Iterable[int | None], after: Iterable[int | None]) -> set[int]:
    """Pages whose copy is no longer where the guest first said (page-aligned gpas of ``pages``)."""
    was = {g & ~0xFFF for g in before if g is not None}
    now = {g & ~0xFFF for g in after if g is not None}
    return {p for p in pages if p in was and p not in now}


def mark_moved(views: Sequence[PageView], gone: set[int]) -> list[PageView]:
    return [PageView(v.gpa, v.holder, v.method, "not-examined",
                     "the copy moved to another guest page during the host's reads") if v.gpa in gone else v
            for v in views]


def not_examined(pages: Mapping[int, str], method: str, why: str) -> list[PageView]:
    """Every page, reported as not examined by ``method`` (it gave no view at all, e.g. QEMU refused)."""
    return [PageView(gpa, holder, method, "not-examined", why) for gpa, holder in sorted(pages.items())]


def tally(views: Sequence[PageView]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in views:
        out[v.outcome] = out.get(v.outcome, 0) + 1
    return out


def require_pages(pages: Mapping[int, str]) -> None:
    if not pages:
        raise DumpError("the planter located none of its copies in guest-physical memory (pagemap gave no "
                        "PFNs: is the planter root?): no page can be examined")
