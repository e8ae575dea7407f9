"""Log patterns on crafted input (issue 10 item 7): seconds per MiB for each hostile line family,
through ``sevkit analyze``'s path (``analyze_text``: line cap, detection, the kind's parser) and the
host grader's path (``parse_host_dmesg`` over ``cap_lines``, what a bundle's kernel log goes through).

Each family is a line padded or repeated to 64 KiB (the lines issue 10 timed in minutes), repeated
to 1 MiB and to 4 MiB of text. Linear patterns give a 4 MiB / 1 MiB time ratio near 4; the
worst seconds per MiB times the 32 MiB capture cap is the worst case ``sevkit analyze`` can be made
to spend. The self-test (tests/unit/test_logs_linear.py) takes its per-input wall-clock bound from
these figures, with a wide margin for a loaded CI machine.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sevkit.errors import InputError
from sevkit.logs.analyze import analyze_text
from sevkit.logs.dmesg import parse_host_dmesg
from sevkit.logs.lines import cap_lines
from sevkit.userfiles import CAPTURE

LINE = 64 * 1024
REPS = 3

# name -> one hostile line of about n characters (no newline)
FAMILIES: dict[str, Callable[[int], str]] = {
    "ok-padded": lambda n: "[PASS] - a" + " " * n + "b",
    "sev-repeated": lambda n: "SEV: " * (n // 5),
    "sev-repeated-vc": lambda n: "SEV: " * (n // 5) + "#VC exceptio",
    "guest-status-tokens": lambda n: "SEV: Status:" + " a" * (n // 2) + " !",
    "mem-encrypt-tokens": lambda n: "Memory Encryption Features active: AMD" + " a" * (n // 2) + "!",
    "cpuid-blanks": lambda n: "   SEV:" + " " * n + "x",
    "cpuid-blanks-eq": lambda n: " SEV:" + " " * n + "= ",
    "cpuid-raw-blanks": lambda n: "   0x8000001f 0x00: eax=" + " " * n,
    "phys-reduction": lambda n: "physical address" + " reduction" * (n // 10),
    "kvm-prompt-path": lambda n: "cat " + "kvm_amd/parameters/" * (n // 19) + " x",
    "asid-range-digits": lambda n: "SEV enabled (ASIDs 1 - " + "1" * n,
    "init-digits": lambda n: "SEV: failed to INIT error " + "1" * n + "x",
    "ccp-word": lambda n: "ccp " + "a" * n + ": x",
    "supported-blanks": lambda n: " SEV supported" + " " * n + "x",
    "rmp-words": lambda n: "SEV-SNP: RMP configuration not valid" + " x" * (n // 2),
    "iommu-words": lambda n: "AMD-Vi: SNP: " + "a " * (n // 2),
    "timestamp-blanks": lambda n: "[" + " " * n + "x SEV: ",
    "words-dense": lambda n: "SEV sev ASID psp PSP ccp RMP " * (n // 29),
}


def text_of(family: str, size: int, line: int = LINE) -> str:
    one = FAMILIES[family](line) + "\n"
    return one * max(1, size // len(one))


def _analyze(text: str) -> None:
    with contextlib.suppress(InputError):
        analyze_text(text, "bench")


def _grader(text: str) -> None:
    parse_host_dmesg(cap_lines(text)[0])


def _time(fn: Callable[[str], None], text: str) -> float:
    runs = []
    for _ in range(REPS):
        t = time.perf_counter()
        fn(text)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def run(out_dir: Path) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for family in FAMILIES:
        small, big = text_of(family, 1 << 20), text_of(family, 4 << 20)
        row = {}
        for path, fn in (("analyze", _analyze), ("grader", _grader)):
            t_small, t_big = _time(fn, small), _time(fn, big)
            row[path] = {"s_per_mib": round(t_big / (len(big) / 2**20), 4),
                         # below 20 ms the ratio is timer noise
                         "ratio_4MiB_to_1MiB": round(t_big / t_small, 2) if t_small > 0.02 else None}
        rows[family] = row
    worst = max((r[p]["s_per_mib"], f, p) for f, r in rows.items() for p in ("analyze", "grader"))
    return {"families": rows, "worst_s_per_mib": worst[0], "worst": f"{worst[1]} ({worst[2]})",
            "worst_ratio": max(r[p]["ratio_4MiB_to_1MiB"] or 0 for r in rows.values() for p in ("analyze", "grader")),
            "line_length": LINE, "capture_cap_mib": CAPTURE.limit >> 20,
            "worst_case_full_capture_s": round(worst[0] * (CAPTURE.limit >> 20), 1)}
