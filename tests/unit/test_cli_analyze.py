"""`sevkit analyze` through the real command line: bad input gets one line naming the file and
exit 2, never a traceback; good files are printed; several files follow the documented rule
(every file is tried, bad ones reported, exit 2 if any was bad)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.analyze_cli import assert_one_line_error, realdata, sevkit

from sevkit.cli import main

REPO = Path(__file__).resolve().parents[2]
GOOD_HOST = "dmesg-host/amdsev-176_snp-init-fail-0x3_sev-init-fail-0x1_api-1.51-build-3.txt"


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert_one_line_error(sevkit(str(empty)), empty, "empty file")
    blank = tmp_path / "blank.log"
    blank.write_text("\n  \n\t\n")
    assert_one_line_error(sevkit(str(blank)), blank, "empty file")


def test_binary_junk(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(random.Random(7).randbytes(8192))
    assert_one_line_error(sevkit(str(junk)), junk, "binary data")


def test_binary_without_nul_bytes(tmp_path: Path) -> None:
    junk = tmp_path / "junk2.bin"
    rng = random.Random(8)
    junk.write_bytes(bytes(rng.randrange(1, 256) for _ in range(4096)))
    assert_one_line_error(sevkit(str(junk)), junk, "binary data")
    # a UTF-16 byte-order mark in front of junk must not turn it into "text"
    junk.write_bytes(b"\xff\xfe" + bytes(rng.randrange(1, 256) for _ in range(4096)))
    assert_one_line_error(sevkit(str(junk)), junk, "binary data")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "dmesg.txt"
    assert_one_line_error(sevkit(str(missing)), missing, "no such file")


def test_directory(tmp_path: Path) -> None:
    assert_one_line_error(sevkit(str(tmp_path)), tmp_path, "is a directory")


def test_unreadable_file(tmp_path: Path) -> None:
    # root reads mode-000 files, so use files no one can read: a path through a regular file
    # (ENOTDIR) and /proc/self/mem at offset 0 (EIO)
    f = tmp_path / "plain.txt"
    f.write_text("x\n")
    through = f / "dmesg.txt"
    assert_one_line_error(sevkit(str(through)), through, "cannot read")
    assert_one_line_error(sevkit("/proc/self/mem"), "/proc/self/mem", "cannot read")


def test_unknown_kind(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Rack 7, slot 3: fans replaced.\nBIOS settings photographed, see ticket.\n")
    assert_one_line_error(sevkit(str(notes)), notes, "unknown kind")


def test_kernel_log_without_sev_lines(tmp_path: Path) -> None:
    log = tmp_path / "dmesg.txt"
    log.write_text("[    0.000000] Linux version 6.1.0-18-amd64\n[    1.234567] usb 1-1: new high-speed USB device\n")
    assert_one_line_error(sevkit(str(log)), log, "no SEV, SME, PSP or kvm_amd lines")


def test_truncated_log(tmp_path: Path) -> None:
    """Truncated = the file ends mid-line (no final newline) inside a log-like line (kernel
    timestamp or SEV/PSP words) and leaves no complete line that can be read. A real capture
    cut inside its only line is the case; text of another kind cut anywhere is "unknown kind"."""
    real = realdata("dmesg-host/sevtool-43_milan-7313_ubuntu20.04-5.8.0-43_init-fail-0x13.txt").read_bytes()
    cut = tmp_path / "cut.txt"
    cut.write_bytes(real[: real.index(b"failed") + 4])       # "... SEV: fail"
    assert_one_line_error(sevkit(str(cut)), cut, "truncated")
    stamp_only = tmp_path / "stamp.txt"
    stamp_only.write_bytes(real[:8])                          # "[    6.0"
    assert_one_line_error(sevkit(str(stamp_only)), stamp_only, "truncated")
    other = tmp_path / "other.txt"
    other.write_text('{"attestation_report": "AAAA')       # not log-like: unknown kind
    assert_one_line_error(sevkit(str(other)), other, "unknown kind")


def test_truncated_but_with_complete_lines_is_read_with_a_note(tmp_path: Path) -> None:
    real = realdata(GOOD_HOST).read_bytes()
    cut = tmp_path / "cut.txt"
    cut.write_bytes(real[: real.index(b"SEV supported") + 9])  # cut inside the kvm_amd line
    proc = sevkit("--json", str(cut))
    assert proc.returncode == 0, proc.stderr
    (obj,) = json.loads(proc.stdout)
    assert obj["kind"] == "host-dmesg"
    assert obj["errors"] == ["SEV-SNP INIT failed: error 0x3", "SEV INIT failed: error 0x1, rc -5"]
    assert obj["asid_counts"] == {}          # the cut kvm_amd line is not half-read
    assert any("last line may be cut" in n for n in obj["notes"])


def test_several_files_good_ones_printed_bad_ones_named_exit_2(tmp_path: Path) -> None:
    good = realdata(GOOD_HOST)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    missing = tmp_path / "missing.txt"
    proc = sevkit("--json", str(good), str(empty), str(missing))
    assert proc.returncode == 2
    out = json.loads(proc.stdout)
    assert [o["file"] for o in out] == [str(good)]
    err = proc.stderr.splitlines()
    assert len(err) == 2 and str(empty) in err[0] and str(missing) in err[1]
    assert "Traceback" not in proc.stderr


def test_human_summary() -> None:
    proc = sevkit(str(realdata(GOOD_HOST)), str(realdata("cpuid/amdsev-197_milan-7313_hpe-dl385-gen10plus-v2_"
                                                        "cpuid-1-r-l-0x8000001f.txt")))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "host-dmesg" in out and "SEV no, SEV-ES no, SEV-SNP no" in out
    assert "firmware: SEV API 1.51 build 3" in out
    assert "ASIDs: SEV 239, SEV-ES 14, SEV-SNP 14" in out
    assert "error: SEV-SNP INIT failed: error 0x3" in out
    assert "cpuid: c_bit 51, phys_addr_reduction 4, num_vmpls 4, max_guests 253, min_sev_asid 15" in out


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--json", str(realdata(GOOD_HOST))]) == 0
    (obj,) = json.loads(capsys.readouterr().out)
    for key in ("file", "kind", "features", "firmware", "asid_counts", "errors", "notes", "evidence_lines"):
        assert key in obj
    assert set(obj["features"]) == {"SME", "SEV", "SEV-ES", "SEV-SNP"}


def test_utf16_and_colored_dmesg_are_read(tmp_path: Path) -> None:
    text = realdata(GOOD_HOST).read_text()
    u16 = tmp_path / "u16.txt"
    u16.write_bytes(text.encode("utf-16"))          # what PowerShell's > writes
    colored = tmp_path / "color.txt"
    colored.write_text("\x1b[32m" + text.replace("\n", "\x1b[0m\n", 3))
    proc = sevkit("--json", str(u16), str(colored))
    assert proc.returncode == 0, proc.stderr
    a, b = json.loads(proc.stdout)
    assert a["errors"] == b["errors"] == ["SEV-SNP INIT failed: error 0x3", "SEV INIT failed: error 0x1, rc -5"]


def test_no_files_is_a_usage_error() -> None:
    proc = sevkit()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_stdin_paste() -> None:
    text = realdata(GOOD_HOST).read_text()
    proc = subprocess.run([sys.executable, "-m", "sevkit", "analyze", "--json", "-"], cwd=REPO, input=text,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    (obj,) = json.loads(proc.stdout)
    assert obj["file"] == "<stdin>" and obj["kind"] == "host-dmesg"
    empty = subprocess.run([sys.executable, "-m", "sevkit", "analyze", "-"], cwd=REPO, input="",
                           capture_output=True, text=True, timeout=60, check=False)
    assert_one_line_error(empty, "<stdin>", "empty file")
