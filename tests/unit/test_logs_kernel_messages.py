"""Issue 9 item 14: the table of every SEV / PSP / kvm_amd kernel message `sevkit analyze` knows
(sevkit.logs.patterns.HOST_MESSAGES / GUEST_MESSAGES), each with the kernel source file it comes
from and the printk format written there.

Each row is checked against its own source format: the format is rendered with sample arguments
(SYNTHETIC lines, built here from the format string, behind the usual dmesg prefix) and the
row's pattern must match it. The parametrized ids list every pattern with its source file.
Real captures are checked in test_logs_formats.py / test_cli_analyze.py.
"""

from __future__ import annotations

import re
import time

import pytest

from sevkit.logs import patterns as P
from sevkit.logs.analyze import analyze_text, detect_kind
from sevkit.logs.dmesg import parse_host_dmesg

ALL = P.HOST_MESSAGES + P.GUEST_MESSAGES
CONV = re.compile(r"%(?P<flags>[-#0 +]*)(?P<width>\d*)(?:ll|l|h)?(?P<conv>[diuxXsc%])")
# the values a %s takes in each message (default "INIT")
STRINGS = {"api": ["-SNP"], "kvm_range": ["-ES", "enabled"], "init_ex_failed": ["INIT_EX"],
           "init_ex_read": ["/var/lib/sev_init_ex.nv"], "init_ex_new_file": ["/var/lib/sev_init_ex.nv"]}
# the prefix each kind of printk carries in dmesg: dev_*() on the ccp PCI function, pr_*() of kvm_amd
PREFIX = {P.SP_PCI: "ccp 0000:01:00.5: ", P.PSP_DEV: "ccp 0000:01:00.5: ", P.SEV_DEV: "ccp 0000:01:00.5: ",
          P.CCP_DEV: "ccp 0000:01:00.5: ", P.KVM_SEV: "kvm_amd: ", P.KVM_SVM: "kvm_amd: "}


def render(msg: P.KernelMessage) -> str:
    """The dmesg line the format prints (SYNTHETIC arguments)."""
    strings = iter(STRINGS.get(msg.id, []))

    def arg(m: re.Match[str]) -> str:
        conv, width = m["conv"], int(m["width"] or 0)
        if conv == "%":
            return "%"
        if conv == "s":
            return next(strings, "INIT")
        if conv in "xX":
            digits = f"{0x1f:0{width}x}" if "0" in m["flags"] else "1f"
            return ("0x" if "#" in m["flags"] else "") + (digits.upper() if conv == "X" else digits)
        return "5"

    return "[    5.123456] " + PREFIX.get(msg.source, "") + CONV.sub(arg, msg.fmt).rstrip("\n")


@pytest.mark.parametrize("msg", ALL, ids=lambda m: f"{m.id}@{m.source.split(' ')[0]}")
def test_pattern_matches_its_source_format(msg: P.KernelMessage) -> None:
    line = render(msg)
    assert msg.pattern.search(line), f"{msg.id} ({msg.source}): {msg.pattern.pattern!r} misses {line!r}"
    assert msg.outcome in ("ok", "fail", "info")
    assert msg.scope in ("psp", "sev", "sev-es", "sev-snp", "kvm", "runtime", "sme", "guest")


def test_table_covers_every_source_file_the_issue_names() -> None:
    sources = {m.source for m in ALL}
    for wanted in ("drivers/crypto/ccp/sp-pci.c", "drivers/crypto/ccp/psp-dev.c", "drivers/crypto/ccp/sev-dev.c",
                   "drivers/crypto/ccp/ccp-dev.c", "arch/x86/kvm/svm/sev.c", "arch/x86/kvm/svm/svm.c",
                   "arch/x86/virt/svm/sev.c", "arch/x86/mm/mem_encrypt.c"):
        assert wanted in sources, wanted
    assert any(s.startswith("arch/x86/coco/sev") for s in sources)
    assert len({m.id for m in ALL}) == len(ALL)
    for m in ALL:
        print(f"{m.outcome:4} {m.scope:8} {m.source:32} {m.fmt.rstrip()!r}")


@pytest.mark.parametrize("msg", P.HOST_FAILURES, ids=lambda m: m.id)
def test_every_host_failure_is_an_error_line_and_takes_down_its_scope(msg: P.KernelMessage) -> None:
    """A log of that one failure line (SYNTHETIC, rendered from the source format), after a healthy
    kvm_amd + PSP report when the failure is not a PSP-level one."""
    healthy = ("[ 4.0] ccp 0000:01:00.5: SEV-SNP API:1.55 build:21\n[ 4.1] kvm_amd: SEV enabled (ASIDs 100 - 509)\n"
               "[ 4.1] kvm_amd: SEV-ES enabled (ASIDs 1 - 99)\n[ 4.1] kvm_amd: SEV-SNP enabled (ASIDs 1 - 99)\n")
    h = parse_host_dmesg(healthy + render(msg) + "\n")
    assert h.errors, f"{msg.id}: no error line"
    off = {"psp": ("SEV", "SEV-ES", "SEV-SNP"), "sev": ("SEV", "SEV-ES"), "sev-es": ("SEV-ES", "SEV-SNP"),
           "sev-snp": ("SEV-SNP",), "kvm": ("SEV", "SEV-ES", "SEV-SNP"), "runtime": ()}[msg.scope]
    for f in off:
        assert h.features[f] is False, f"{msg.id} ({msg.scope}): {f} is {h.features[f]}"
    if msg.scope == "runtime":
        assert h.features == {"SME": None, "SEV": True, "SEV-ES": True, "SEV-SNP": True}


@pytest.mark.parametrize("line", [
    "[    2.817520] ccp 0000:05:00.2: psp: unable to access the device: you might be running a broken BIOS.",
    "[    3.100000] ccp 0000:01:00.5: psp: unable to allocate an IRQ",
    "[    3.100000] ccp 0000:01:00.5: psp initialization failed",
    "[    3.100000] ccp 0000:01:00.5: initialization failed",
])
def test_a_psp_that_cannot_be_reached_is_an_error_even_alone(line: str) -> None:
    """SYNTHETIC one-line logs from the psp-dev.c / sp-pci.c formats: no SEV line follows, yet the
    file is a host log with an error, and nothing firmware-backed is usable."""
    text = "[    2.800000] ccp 0000:05:00.2: ccp enabled\n" + line + "\n"
    assert detect_kind(text) == "host-dmesg"
    out = analyze_text(text, "psp.log")
    (error,) = out["errors"]
    assert line.endswith(error) and ("unable" in error or "failed" in error)
    assert (out["features"]["SEV"], out["features"]["SEV-ES"], out["features"]["SEV-SNP"]) == (False, False, False)


def test_patterns_are_linear_on_hostile_lines() -> None:
    """SYNTHETIC 200 kB lines built from each format's own text: every pattern finishes quickly."""
    started = time.monotonic()
    for msg in ALL:
        text = render(msg)
        hostile = (text * (200_000 // len(text) + 1))[:200_000]
        for probe in (hostile, "x" * 200_000, hostile.replace(" ", "")):
            msg.pattern.search(probe)
    assert time.monotonic() - started < 20
