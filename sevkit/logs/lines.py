"""Bounded lines: every text the log patterns see has its lines cut to MAX_LINE characters first.

The patterns are written to be linear, but a linear pattern still costs per character, and ~50 of
them run on a line that mentions SEV; cutting lines bounds the work per line whatever a crafted
capture or a hostile host's kernel log holds (issue 10 item 7). Nothing real is lost: a printk
record is at most 1024 bytes (kernel/printk/internal.h PRINTKRB_RECORD_MAX; CONSOLE_LOG_MAX before
6.1) plus a timestamp or journal
prefix, and a /proc/cpuinfo flags line is ~1.5 KiB.
"""

from __future__ import annotations

import re

MAX_LINE = 2048
_LONG_LINE = re.compile(rf"[^\n]{{{MAX_LINE + 1}}}")


def cap_lines(text: str) -> tuple[str, int]:
    """``text`` with every line cut to MAX_LINE characters (the patterns then see bounded lines),
    and how many lines were cut."""
    if not _LONG_LINE.search(text):
        return text, 0
    lines = text.split("\n")
    cut = sum(1 for ln in lines if len(ln) > MAX_LINE)
    return "\n".join(ln[:MAX_LINE] for ln in lines), cut
