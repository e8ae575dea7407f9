"""What a cell counts after its fault: live processes it started, dump files left, the report folder."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path


def _stat_fields(pid: str) -> list[str] | None:
    try:
        return (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def qemu_pids_under(path: Path) -> list[int]:
    """Live qemu-system processes whose command line mentions ``path`` (only ones a cell started)."""
    needle = str(path).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        st = _stat_fields(entry.name)
        if st and st[0] != "Z" and b"qemu-system" in os.path.basename(args[0]) and any(needle in a for a in args):
            found.append(int(entry.name))
    return found


def session_members(sid: int) -> list[int]:
    """Live processes in session ``sid`` (a suite run started with start_new_session: all its helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat_fields(entry.name)
            # stat after the comm: state ppid pgrp session ...
            if st and st[0] != "Z" and int(st[3]) == sid:
                found.append(int(entry.name))
    return found


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def report_state(run: Path) -> tuple[bool, str]:
    """Is a suite run folder complete and readable? junit.xml parses, exit_code is a number, session.log and
    report.html exist, result.json parses and carries the same exit code. Returns (ok, one-line summary)."""
    missing, bad = [], []
    for name in ("junit.xml", "exit_code", "session.log", "result.json", "report.html"):
        if not (run / name).is_file():
            missing.append(name)
    if (run / "junit.xml").is_file():
        try:
            ET.parse(run / "junit.xml")
        except ET.ParseError as exc:
            bad.append(f"junit.xml: {exc}")
    code = (run / "exit_code").read_text().strip() if (run / "exit_code").is_file() else ""
    if code and not code.isdigit():
        bad.append(f"exit_code {code!r}")
    if (run / "result.json").is_file():
        try:
            recorded = json.loads((run / "result.json").read_text()).get("run", {}).get("exit_code")
            if code and recorded != int(code):
                bad.append(f"result.json exit_code {recorded} != {code}")
        except (ValueError, AttributeError) as exc:
            bad.append(f"result.json: {exc}")
    ok = not missing and not bad
    text = f"exit_code {code or '?'}, junit+result.json+report.html"
    if missing:
        text += f"; MISSING {','.join(missing)}"
    if bad:
        text += f"; UNREADABLE {'; '.join(bad)}"
    return ok, ("complete: " if ok else "") + text
