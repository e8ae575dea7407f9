"""Host side of report retrieval: send guest_script.py into the guest through any Shell
(SerialConsole, SshSession), run it with a nonce, and bring the report and certificates back.

The script travels through sevkit.guestpy (base64-encoded, one command: SerialConsole stages it
past the tty's line limit); the answer comes back as one base64 line tagged ``SEVKIT-ATTEST``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..errors import AttestationError
from ..guestpy import run_python
from ..results import CommandResult, Shell
from .guestanswer import parse_answer

TAG = "SEVKIT-ATTEST "
TSM_ROOT = "/sys/kernel/config/tsm/report"


def script_text() -> str:
    return resources.files("sevkit.attestation").joinpath("guest_script.py").read_text()


@dataclass(frozen=True)
class GuestReport:
    """A report as the guest returned it, plus how it got it (evidence)."""

    report: bytes
    certs: bytes                        # certificate table (auxblob / certs buffer); b"" if none
    nonce: bytes
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    transcript: tuple[CommandResult, ...] = ()


def fetch_report(shell: Shell, nonce: bytes | None = None, *, vmpl: int = 0, timeout: float = 60.0,
                 tsm_root: str = TSM_ROOT, device: str = "/dev/sev-guest", method: str = "auto",
                 python: str = "python3") -> GuestReport:
    """Get a report for ``nonce`` (default: 64 fresh random bytes) from the guest behind ``shell``.

    Raises AttestationError with the guest's own message when no report could be obtained, and
    CommandFailed (via CommandResult.check) when the shell itself fails.
    """
    if nonce is None:
        nonce = secrets.token_bytes(64)
    if len(nonce) > 64:
        raise AttestationError(f"nonce is {len(nonce)} bytes; REPORT_DATA holds 64")
    tag = secrets.token_hex(4)
    args = ["--nonce", nonce.hex(), "--vmpl", str(vmpl), "--tsm-root", tsm_root,
            "--entry", f"sevkit-{tag}", "--device", device, "--method", method]
    res = run_python(shell, script_text(), args, timeout=timeout, python=python)
    transcript = [res]
    answer = _decode_answer(res)
    if "error" in answer:
        raise AttestationError(f"guest could not produce an SNP report: {answer['error']}",
                               evidence={"guest": answer, "exit_status": res.exit_status})
    try:
        report = base64.b64decode(answer["report_b64"], validate=True)
        certs = base64.b64decode(answer.get("certs_b64", ""), validate=True)
    except (KeyError, binascii.Error) as exc:
        raise AttestationError(f"guest answer lacks a usable report: {exc}", evidence={"guest": answer}) from None
    details = {k: v for k, v in answer.items() if not k.endswith("_b64")}
    return GuestReport(report=report, certs=certs, nonce=nonce, method=str(answer.get("method", "")),
                       details=details, transcript=tuple(transcript))


def _decode_answer(res: CommandResult) -> dict[str, Any]:
    for line in reversed(res.stdout.splitlines()):
        line = line.strip()
        if line.startswith(TAG):
            try:
                blob = base64.b64decode(line[len(TAG):], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise AttestationError(f"garbled answer from the guest: {exc}",
                                       evidence={"stdout": res.stdout[-2000:]}) from None
            return parse_answer(blob)       # schema-checked: the guest is not trusted
    raise AttestationError(
        f"guest attestation script gave no answer (exit {res.exit_status}); is python3 in the guest?",
        evidence={"stdout": res.stdout[-2000:], "stderr": res.stderr[-2000:], "exit_status": res.exit_status})
