"""Issue 10 item 7: every log parser fed the crafted long lines that took minutes (a `[PASS] - a`
line padded with blanks, `SEV: ` repeated, cpuid lines with long blank runs, ...), 64 KiB lines
repeated to 128 KiB of text (synthetic, built here).

The budget comes from the benchmark, not from this test: ``make bench`` (benchmarks/regex.py)
measured at most 0.51 s/MiB over all families and both paths (ok-padded through analyze), on this
2-core machine at load average 14-22 (reports/bench/regex.json). 128 KiB is then ~0.07 s; the
bound below is ~60 times that, so only a return of super-linear behaviour (the original inputs
took minutes) can trip it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.regex import FAMILIES, text_of
from sevkit.errors import InputError
from sevkit.logs.analyze import analyze_text
from sevkit.logs.cpuid import parse_cpuid_text
from sevkit.logs.cpuinfo import parse_cpuinfo
from sevkit.logs.detect import detect_kind
from sevkit.logs.dmesg import parse_guest_dmesg, parse_host_dmesg
from sevkit.logs.kvmparams import parse_kvm_params
from sevkit.logs.lines import MAX_LINE, cap_lines
from sevkit.logs.okreport import parse_ok_report, parse_tcb_blocks

SIZE = 128 * 1024
BOUND_S = 4.0

PARSERS: dict[str, Callable[[str], Any]] = {
    "detect_kind": detect_kind, "parse_host_dmesg": parse_host_dmesg, "parse_guest_dmesg": parse_guest_dmesg,
    "parse_cpuinfo": parse_cpuinfo, "parse_cpuid_text": parse_cpuid_text, "parse_kvm_params": parse_kvm_params,
    "parse_ok_report": parse_ok_report, "parse_tcb_blocks": parse_tcb_blocks,
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_parser_is_bounded_on_crafted_lines(family: str) -> None:
    text, cut = cap_lines(text_of(family, SIZE))        # what every caller does first
    assert cut > 0 and max(len(ln) for ln in text.splitlines()) <= MAX_LINE
    slow = {}
    for name, parse in PARSERS.items():
        start = time.perf_counter()
        parse(text)
        took = time.perf_counter() - start
        if took > BOUND_S:
            slow[name] = round(took, 2)
    start = time.perf_counter()
    try:
        obj = analyze_text(text_of(family, SIZE), family)    # the CLI path cuts the lines itself
        assert any("were cut" in n for n in obj["notes"])
    except InputError:
        pass
    took = time.perf_counter() - start
    if took > BOUND_S:
        slow["analyze_text"] = round(took, 2)
    assert not slow, f"{family}: over {BOUND_S}s per 128 KiB input: {slow}"
