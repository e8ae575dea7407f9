"""In-guest parsing: the encryption banner and kernel-log problems on real guest captures
(tests/data/realdata/dmesg-guest, see PROVENANCE.md), and the probe's output format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sevkit.errors import GuestError
from sevkit.inguest import EXPECTED_FEATURES, encryption_banner, kernel_problems, parse_probe, probe_command
from sevkit.results import CommandResult

GUEST = Path(__file__).resolve().parents[2] / "tests" / "data" / "realdata" / "dmesg-guest"


def _read(name: str) -> str:
    path = GUEST / name
    assert path.is_file(), f"real capture missing: {path} (tests/data/realdata)"
    return path.read_text(errors="replace")


@pytest.mark.parametrize(("name", "kind"), [
    ("sevctl-203_epyc3151-host_sev-es-guest_policy-0x5.txt", "sev-es"),
    ("amdsev-198_snp-guest_snp-latest-kernel_31-cpuid-entries_no-sev-guest-dev.txt", "sev-snp"),
    ("os-autoinst-16048_sle15sp5-public-cloud_sev-guest.txt", "sev"),
])
def test_banner_names_exactly_the_features(name: str, kind: str) -> None:
    banner = encryption_banner(_read(name))
    assert banner.present and banner.features == EXPECTED_FEATURES[kind]


def test_no_banner_in_a_plain_log() -> None:
    plain = "[    0.000000] Linux version 6.12.117+deb13-amd64\n[    0.1] x86/cpu: User Mode Instruction Prevention\n"
    assert not encryption_banner(plain).present


def test_vc_failure_is_a_problem() -> None:
    problems = kernel_problems(_read("amdsev-255_snp-guest_6.10.10_vc-unsupported-exit-0x404.txt"))
    assert any("#VC" in p for p in problems)


def test_clean_capture_has_no_problem() -> None:
    assert kernel_problems(_read("sevctl-203_epyc3151-host_sev-es-guest_policy-0x5.txt")) == []


def test_oops_and_call_trace_found() -> None:
    log = "[ 5.1] BUG: kernel NULL pointer dereference, address: 0000000000000000\n[ 5.2] Call Trace:\n"
    kinds = [p.split(":")[0] for p in kernel_problems(log)]
    assert kinds == ["oops", "call trace"]


def test_probe_parsing_and_failure() -> None:
    raw = {"sev_status": 7, "cpuid_max_ext": 0x8000001F, "cpuid_8000001f": [0x1A, 0x1F3 | (1 << 6), 0, 0],
           "sev_guest_dev": True, "tsm_report_dir": True, "tsm_provider": "sev_guest", "kernel": "6.12.1"}
    ok = CommandResult("probe", "noise\nSEVKIT-PROBE " + json.dumps(raw) + "\n", 0, 0.1, transport="ssh")
    p = parse_probe(ok)
    assert (p.status_low3, p.cpuid_eax_sev_bits, p.cbitpos, p.tsm_provider) == (7, 0x1A, 0x33, "sev_guest")
    absent = parse_probe(CommandResult("probe", "SEVKIT-PROBE " + json.dumps(
        {"cpuid_max_ext": 0x8000000A, "msr_error": "OSError: errno 5 (Input/output error)", "kernel": "6"}), 0, 0.1))
    assert absent.sev_status is None and absent.cpuid_eax_sev_bits == 0 and "errno 5" in (absent.msr_error or "")
    with pytest.raises(GuestError, match="probe failed"):
        parse_probe(CommandResult("probe", "", 127, 0.1, stderr="python3: not found"))


def test_probe_command_is_one_quoting_safe_line() -> None:
    cmd = probe_command()
    assert "\n" not in cmd and "'" not in cmd and cmd.endswith("| base64 -d | python3 -")
