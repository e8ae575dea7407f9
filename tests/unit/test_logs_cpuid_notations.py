"""Issue 9 item 15: `sevkit analyze` reads CPUID Fn8000_001F register dumps in any common notation
and refuses (exit 2, one line) a dump where leaf 0x8000001f or its four registers are ambiguous.

The register VALUES are the real capture amdsev-197 (HPE DL385 Gen10 Plus v2, EPYC 7313:
eax=0x0101fd3f ebx=0x00004133 ecx=0x000000fd edx=0x0000000f). Every other notation below is that
capture re-written SYNTHETICALLY in the notations people paste (cpuid -1 -r, a log's "eax = 0x...,",
upper case without 0x, one register per line, AMD PPR names CPUID_Fn8000001F_EAX).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest
from helpers.analyze_cli import assert_one_line_error, realdata, sevkit

from sevkit.cli import main
from sevkit.errors import InputError
from sevkit.logs.analyze import detect_kind
from sevkit.logs.cpuid import parse_cpuid_text

CAPTURE = "cpuid/amdsev-197_milan-7313_hpe-dl385-gen10plus-v2_cpuid-1-r-l-0x8000001f.txt"
FIELDS = {"c_bit": 51, "phys_addr_reduction": 4, "num_vmpls": 4, "max_guests": 253, "min_sev_asid": 15}
REGISTERS = {"eax": "0x0101fd3f", "ebx": "0x00004133", "ecx": "0x000000fd", "edx": "0x0000000f"}

NOTATIONS = {
    "cpuid -1 -r without the leaf on the line": "$ cpuid -1 -r -l 0x8000001f\nCPU:\n"
        "   eax=0x0101fd3f ebx=0x00004133 ecx=0x000000fd edx=0x0000000f\n",
    "sevkit's own line": "CPUID 0x8000001f: eax=0x0101fd3f ebx=0x00004133 ecx=0x000000fd edx=0x0000000f\n",
    "spaces, commas, semicolons": "leaf 0x8000001F: eax = 0x0101fd3f, ebx= 0x4133; ecx =0xfd; edx=0xf;\n",
    "upper case, no 0x": "Leaf 8000001F\nEAX=0101FD3F EBX=00004133 ECX=000000FD EDX=0000000F\n",
    "one register per line": "Fn8000_001F:\n  eax: 0x0101fd3f\n  ebx: 0x00004133\n  ecx: 0x000000fd\n"
        "  edx: 0x0000000f\n",
    "AMD PPR names": "CPUID_Fn8000001F_EAX = 0x0101FD3F\nCPUID_Fn8000001F_EBX = 0x00004133\n"
        "CPUID_Fn8000001F_ECX = 0x000000FD\nCPUID_Fn8000001F_EDX = 0x0000000F\n",
    "leaf and upper-case registers on one line": "0x8000001F: EAX=0x0101FD3F EBX=0x00004133 ECX=0x000000FD "
        "EDX=0x0000000F\n",
    "trailing h": "leaf 8000001Fh: eax=0101FD3Fh ebx=00004133h ecx=000000FDh edx=0000000Fh\n",
    "other leaves around it": "0x80000000 0x00: eax=0x80000028 ebx=0 ecx=0 edx=0\n"
        "0x8000001f 0x00: eax=0x0101fd3f ebx=0x00004133 ecx=0x000000fd edx=0x0000000f\n"
        "0x80000020 0x00: eax=0 ebx=0xe ecx=0x7f edx=0\n",
}


def test_the_real_capture() -> None:
    text = realdata(CAPTURE).read_text()
    x = parse_cpuid_text(text)
    assert x.fields == FIELDS and x.registers == REGISTERS


@pytest.mark.parametrize("name", list(NOTATIONS))
def test_notation_gives_the_capture_s_values(name: str) -> None:
    text = NOTATIONS[name]
    assert detect_kind(text) == "cpuid"
    x = parse_cpuid_text(text)
    assert x.registers == REGISTERS and x.fields == FIELDS
    assert x.features == {"SME": True, "SEV": True, "SEV-ES": True, "SEV-SNP": True}


AMBIGUOUS = {
    "no leaf anywhere": ("eax=0x0101fd3f ebx=0x00004133 ecx=0x000000fd edx=0x0000000f\n", "without a leaf"),
    "a register missing": ("0x8000001f: eax=0x0101fd3f ebx=0x00004133 ecx=0x000000fd\n", "without edx"),
    "two different values": ("0x8000001f: eax=0x0101fd3f ebx=0x00004133 ecx=0x000000fd edx=0x0000000f\n"
                             "0x8000001f: eax=0x0000000f ebx=0x00004133 ecx=0x000000fd edx=0x0000000f\n",
                             "different values"),
    "a register given twice": ("0x8000001f: eax=0x0101fd3f eax=0x1 ebx=0x00004133 ecx=0xfd edx=0xf\n",
                               "without ebx, ecx, edx"),
}


def test_a_dump_without_the_leaf_says_so() -> None:
    """Registers of another leaf only: nothing ambiguous about 0x8000001f, it is just not there."""
    x = parse_cpuid_text("leaf 0x80000008\neax=0x3030 ebx=0 ecx=0 edx=0\n")
    assert x.features == dict.fromkeys(("SME", "SEV", "SEV-ES", "SEV-SNP")) and x.registers == {}
    assert "no leaf 0x8000001f" in " ".join(x.notes)


@pytest.mark.parametrize("name", list(AMBIGUOUS))
def test_ambiguity_is_refused(name: str) -> None:
    text, words = AMBIGUOUS[name]
    with pytest.raises(InputError, match=words):
        parse_cpuid_text(text)


def test_ambiguity_exit_2_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "regs.txt"
    bad.write_text(AMBIGUOUS["no leaf anywhere"][0])
    assert_one_line_error(sevkit(str(bad)), bad, "without a leaf")


def test_identical_repeats_and_all_cpu_dumps_are_not_ambiguous(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    line = "0x8000001f 0x00: eax=0x0101fd3f ebx=0x00004133 ecx=0x000000fd edx=0x0000000f\n"
    assert parse_cpuid_text(line + line).fields == FIELDS
    every_cpu = "CPU 0:\n   " + line + "CPU 1:\n   " + line.replace("0x0101fd3f", "0x00000000")
    assert parse_cpuid_text(every_cpu).fields == FIELDS          # cpuid's all-CPU dump: CPU 0's values
    f = tmp_path / "notation.txt"
    f.write_text(NOTATIONS["spaces, commas, semicolons"])
    assert main(["analyze", "--json", str(f)]) == 0
    (obj,) = json.loads(capsys.readouterr().out)
    assert obj["kind"] == "cpuid" and obj["registers"] == REGISTERS and obj["cpuid"] == FIELDS


@pytest.mark.parametrize("unit", ["eax=", "eax = 0x", "0x8000001f ", "Fn8000_", "e" * 7 + "ax:", " " * 8])
def test_hostile_long_lines_stay_linear(unit: str) -> None:
    """SYNTHETIC 1 MB lines of register-like fragments: bounded patterns finish quickly."""
    text = unit * (1_000_000 // len(unit)) + "\n"
    t = time.monotonic()
    with contextlib.suppress(InputError):
        parse_cpuid_text(text)
    assert time.monotonic() - t < 5.0
