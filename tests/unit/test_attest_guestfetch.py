"""FAKE TRANSPORT test of in-guest report retrieval, not an SNP claim.

The real guest_script.py is shipped through fetch_report() exactly as to a guest, but the Shell
runs it on this host against a fake configfs-tsm tree in tmp_path. The fake imitates what
configfs does on ``mkdir`` (creates provider/generation/outblob/auxblob); outblob holds a real
captured report and auxblob a certificate table built from a real VCEK. What is proven: the
script transfer, argument passing, nonce/privlevel writes, the answer encoding and the host-side
decoding and error paths. Getting a report from real SNP firmware is the suite's job.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.attestdata import read

from sevkit.attestation import load_report
from sevkit.attestation.certtable import build_cert_table, parse_cert_table
from sevkit.attestation.guestfetch import fetch_report
from sevkit.errors import AttestationError
from sevkit.results import CommandResult


class FakeLocalShell:
    """Runs each command with bash on this host; optionally plays configfs for the script's entry."""

    def __init__(self, canned: dict[str, bytes] | None = None) -> None:
        self.canned = canned
        self.commands: list[str] = []

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        self.commands.append(cmd)
        if self.canned is not None:
            root = re.search(r"--tsm-root (\S+)", cmd)
            entry = re.search(r"--entry (\S+)", cmd)
            if root and entry:         # what configfs does when the script mkdirs the entry
                d = Path(shlex.split(root.group(1))[0]) / shlex.split(entry.group(1))[0]
                d.mkdir(parents=True, exist_ok=True)
                for name, data in self.canned.items():
                    (d / name).write_bytes(data)
        cmd = cmd.replace("python3 ", f"{sys.executable} ", 1)
        t = time.monotonic()
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        return CommandResult(cmd, p.stdout, p.returncode, time.monotonic() - t, p.stderr, "fake-local")


def _canned() -> dict[str, bytes]:
    return {"provider": b"sev_guest\n", "generation": b"1\n", "privlevel": b"",
            "outblob": read("virtee-sev/report_milan.bin"),
            "auxblob": build_cert_table({"VCEK": read("virtee-sev/vcek_milan.der")})}


def test_configfs_path_brings_back_report_and_certs(tmp_path: Path) -> None:
    root = tmp_path / "tsm" / "report"
    root.mkdir(parents=True)
    shell = FakeLocalShell(_canned())
    nonce = bytes(range(64))
    got = fetch_report(shell, nonce, vmpl=0, tsm_root=str(root))
    assert got.method == "configfs-tsm" and got.details["provider"] == "sev_guest"
    assert got.report == read("virtee-sev/report_milan.bin")
    assert load_report(got.report).version == 2
    assert parse_cert_table(got.certs) == {"VCEK": read("virtee-sev/vcek_milan.der")}
    entry = Path(got.details["entry"])
    assert (entry / "inblob").read_bytes() == nonce              # the script wrote our nonce
    assert (entry / "privlevel").read_text() == "0"
    # One command pipes the script to python (sevkit.guestpy); SerialConsole stages it past the tty limit.
    assert len(shell.commands) == 1 and "| base64 -d | python3 - --nonce" in shell.commands[0]


def test_random_nonce_by_default(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    a = fetch_report(FakeLocalShell(_canned()), tsm_root=str(root))
    b = fetch_report(FakeLocalShell(_canned()), tsm_root=str(root))
    assert len(a.nonce) == 64 and a.nonce != b.nonce


def test_no_interface_is_an_error_with_the_guest_message(tmp_path: Path) -> None:
    with pytest.raises(AttestationError, match="no SNP report interface") as exc:
        fetch_report(FakeLocalShell(), b"x", tsm_root=str(tmp_path / "absent"),
                     device=str(tmp_path / "no-sev-guest"))
    assert "not present" in str(exc.value.evidence["guest"]["tried"])


def test_generation_change_detected(tmp_path: Path) -> None:
    """A concurrent writer bumps ``generation`` between inblob and outblob: the report is refused.
    ``generation`` is a FIFO here, fed "1" then "2" by a thread, so the two reads really differ."""
    root = tmp_path / "r"
    root.mkdir()

    class Racing(FakeLocalShell):
        def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
            entry = re.search(r"--entry (\S+)", cmd)
            if not entry:
                return super().run(cmd, timeout)
            d = root / shlex.split(entry.group(1))[0]
            d.mkdir()
            for name, data in _canned().items():
                if name != "generation":
                    (d / name).write_bytes(data)
            fifo = d / "generation"
            os.mkfifo(fifo)

            def feed() -> None:
                for value in (b"1\n", b"2\n"):
                    with open(fifo, "wb") as fh:     # blocks until the script opens it
                        fh.write(value)
                    time.sleep(1.0)                  # let that reader see EOF before reopening

            t = threading.Thread(target=feed, daemon=True)
            t.start()
            self.canned = None
            res = super().run(cmd, timeout)
            t.join(timeout=10)
            return res

    with pytest.raises(AttestationError, match="generation changed 1 -> 2"):
        fetch_report(Racing(), b"n", tsm_root=str(root), timeout=30)


def test_no_answer_is_an_error(tmp_path: Path) -> None:
    class Mute(FakeLocalShell):
        def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
            if "--nonce" in cmd:
                return CommandResult(cmd, "bash: python3: command not found\n", 127, 0.0, "", "fake")
            return super().run(cmd, timeout)

    with pytest.raises(AttestationError, match="no answer"):
        fetch_report(Mute(), b"n")
