"""The fault matrix of issue 10: phases x faults, the rows the cells record, and the table printed at the end.

Every cell injects a real fault into real processes (QEMU under TCG, an OpenSSH/paramiko transport, a
local HTTP server, a small tmpfs, the real suite in a subprocess) and records one row: the outcome
(the error type and its first line), whether the evidence gathered so far was kept, whether the report
folder is complete and readable, and how many QEMU/helper processes and dump files were left behind.
Cells that cannot happen say "n/a" with the reason; cells another self-test already measures name it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

PHASES = ("launch", "boot to login", "serial command", "SSH command", "memory dump", "scan",
          "attestation fetch", "report writing")
FAULTS = ("QEMU killed", "guest panic", "serial silent", "SSH dropped", "SSH never answering", "disk full",
          "SIGTERM", "SIGINT", "key server failing", "key server stalling")

_QMP_ONLY = "this phase talks to QEMU over QMP (or /proc/<pid>/mem), not over the serial console or SSH"
_PANIC_IS_EXIT = "a guest panic is QEMU exiting here (panic=-1 with -no-reboot): the QEMU-killed cell"
_NO_KDS = "the key server is asked only in attestation fetch"

# Why a cell cannot happen (or is the same event as another cell).
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("launch", "guest panic"): "no kernel runs before QMP answers; a boot-time panic is 'boot to login'",
    ("launch", "serial silent"): "launch waits for QMP, not the console; a stopped QEMU at boot is the boot cell",
    ("launch", "SSH dropped"): "no SSH before login",
    ("launch", "SSH never answering"): "no SSH before login",
    ("boot to login", "SSH dropped"): "the readiness loop retries a dropped handshake by design until its "
                                      "deadline: the 'SSH never answering' cell",
    ("serial command", "SSH dropped"): "a serial command does not use SSH",
    ("serial command", "SSH never answering"): "a serial command does not use SSH",
    ("serial command", "disk full"): "a command's output stays in memory; its log is report writing",
    ("SSH command", "serial silent"): "an SSH command does not use the serial console",
    ("SSH command", "disk full"): "a command's output stays in memory; its log is report writing",
    ("memory dump", "guest panic"): _PANIC_IS_EXIT,
    ("memory dump", "serial silent"): _QMP_ONLY,
    ("memory dump", "SSH dropped"): _QMP_ONLY + " (planting the secret is an SSH command)",
    ("memory dump", "SSH never answering"): _QMP_ONLY + " (planting the secret is an SSH command)",
    ("scan", "guest panic"): _PANIC_IS_EXIT,
    ("scan", "serial silent"): _QMP_ONLY,
    ("scan", "SSH dropped"): _QMP_ONLY,
    ("scan", "SSH never answering"): _QMP_ONLY,
    ("scan", "disk full"): "the scan writes nothing: it streams /proc/<pid>/mem or reads the dump file",
    ("attestation fetch", "QEMU killed"): "the VCEK fetch talks to the key server, not the guest (the guest's "
                                          "report is an SSH command)",
    ("attestation fetch", "guest panic"): "the VCEK fetch does not involve the guest",
    ("attestation fetch", "serial silent"): "the VCEK fetch does not involve the guest",
    ("attestation fetch", "SSH dropped"): "the VCEK fetch does not involve the guest",
    ("attestation fetch", "SSH never answering"): "the VCEK fetch does not involve the guest",
    ("report writing", "QEMU killed"): "the report is written by pytest after every guest is stopped",
    ("report writing", "guest panic"): "the report is written by pytest after every guest is stopped",
    ("report writing", "serial silent"): "the report is written by pytest after every guest is stopped",
    ("report writing", "SSH dropped"): "the report is written by pytest after every guest is stopped",
    ("report writing", "SSH never answering"): "the report is written by pytest after every guest is stopped",
}
for _phase in PHASES:
    if _phase != "attestation fetch":
        NOT_APPLICABLE[(_phase, "key server failing")] = _NO_KDS
        NOT_APPLICABLE[(_phase, "key server stalling")] = _NO_KDS
assert set(NOT_APPLICABLE) <= {(p, f) for p in PHASES for f in FAULTS}

# Real cells this matrix does not inject yet, and why (they stay visible in the table).
NOT_MEASURED: dict[tuple[str, str], str] = {
}

# Cells another self-test in `make test` already measures (it asserts the outcome itself).
REFERENCED: dict[tuple[str, str], tuple[str, str]] = {
    ("boot to login", "guest panic"): ("integration/test_guest_boot.py::test_kernel_panic_detected_within_seconds",
                                       "GuestPanic with the console tail (VFS: unable to mount root)"),
    ("serial command", "QEMU killed"): ("integration/test_guest_boot.py::test_killed_qemu_is_guest_died",
                                       "GuestDied naming SIGKILL within 5 s; run folder removed"),
    ("SSH command", "QEMU killed"): ("integration/test_guest_boot.py::test_killed_qemu_is_guest_died",
                                     "StateError caused by the GuestDied (SIGKILL)"),
}


@dataclass
class Row:
    phase: str
    fault: str
    outcome: str              # the error type and what it says (first line)
    evidence: str             # what was kept
    report: str               # report folder complete and readable? ("n/a" for library cells)
    processes_left: int
    dumps_left: int
    seconds: float
    test: str = ""
    note: str = ""


def rows_file() -> Path:
    """Where cells append their rows (one JSON object a line): shared by xdist workers and read at the end."""
    return Path(os.environ.get("SEVKIT_FAULT_ROWS", f"/tmp/sevkit-fault-rows-{os.getpid()}.jsonl"))


def record(row: Row) -> None:
    assert row.phase in PHASES and row.fault in FAULTS, (row.phase, row.fault)
    with open(rows_file(), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(row)) + "\n")


def load_rows(path: Path) -> dict[tuple[str, str], Row]:
    rows: dict[tuple[str, str], Row] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = Row(**json.loads(line))
                rows[(r.phase, r.fault)] = r
    return rows


def table(measured: dict[tuple[str, str], Row], referenced_outcomes: dict[str, str]) -> list[str]:
    """The whole matrix, one line per phase x fault, measured cells first in each phase."""
    head = f"{'phase':<17} {'fault':<20} {'outcome':<84} {'evidence kept':<30} {'report':<24} proc dump  secs"
    lines = [head, "-" * len(head)]
    counts = {"measured": 0, "referenced": 0, "n/a": 0, "not measured": 0}
    for phase in PHASES:
        for fault in FAULTS:
            key = (phase, fault)
            if key in measured:
                r = measured[key]
                counts["measured"] += 1
                lines.append(f"{phase:<17} {fault:<20} {_cut(r.outcome, 84):<84} {_cut(r.evidence, 30):<30} "
                             f"{_cut(r.report, 24):<24} {r.processes_left:>4} {r.dumps_left:>4} {r.seconds:>5.1f}")
            elif key in REFERENCED:
                nodeid, what = REFERENCED[key]
                counts["referenced"] += 1
                status = referenced_outcomes.get(nodeid, "not run in this session")
                lines.append(f"{phase:<17} {fault:<20} {_cut('by ' + nodeid.split('::')[1] + ': ' + what, 84):<84} "
                             f"{'(asserted there)':<30} {'n/a (no suite run)':<24}  ref: {status}")
            elif key in NOT_APPLICABLE:
                counts["n/a"] += 1
                lines.append(f"{phase:<17} {fault:<20} n/a: {NOT_APPLICABLE[key]}")
            else:
                counts["not measured"] += 1
                why = NOT_MEASURED.get(key, "its self-test did not run (or errored) in this session")
                lines.append(f"{phase:<17} {fault:<20} NOT MEASURED: {why}")
    total_p = sum(r.processes_left for r in measured.values())
    total_d = sum(r.dumps_left for r in measured.values())
    lines.append(f"cells: {len(PHASES) * len(FAULTS)}; measured {counts['measured']}, referenced "
                 f"{counts['referenced']}, n/a {counts['n/a']}, not measured {counts['not measured']}; "
                 f"processes left {total_p}, dumps left {total_d}")
    return lines


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
