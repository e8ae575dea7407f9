"""RawInputs: what the collector read, with typed accessors for the grader.

The data is the collector's JSON dict, unchanged, so a bundle or an SSH probe holds exactly
what a local probe would grade. Accessors raise ``Unreadable`` when a source exists in
principle but could not be read (permissions, missing driver node), which the grader turns
into an ``error`` check: an access error is never graded as "feature off".
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from .collector import SCHEMA

ACCESS_ERRNOS = {errno.EACCES, errno.EPERM}


class Unreadable(Exception):
    """A raw input could not be read; carries the evidence and a hint."""

    def __init__(self, message: str, source: str, detail: Any, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.detail = detail
        self.hint = hint


def _root_hint(raw: RawInputs) -> str:
    return "run the probe as root" if raw.euid not in (0, None) else "check that the interface exists"


@dataclass(frozen=True)
class RawInputs:
    data: dict[str, Any]
    origin: str = "local"   # local, ssh://..., bundle:<path>
    extra: dict[str, Any] = field(default_factory=dict)

    # -- basics -------------------------------------------------------------------------------
    @property
    def schema(self) -> int:
        return int(self.data.get("schema", 0))

    def validate(self) -> None:
        """Raise ValueError if this is not collector output that fits the schema (schema.py)."""
        from .schema import schema_problem  # jsonschema is imported only when something is validated

        if not isinstance(self.data, dict) or self.data.get("schema") != SCHEMA:
            raise ValueError(f"raw inputs schema {self.data.get('schema') if isinstance(self.data, dict) else '?'!r}"
                             f" is not {SCHEMA}")
        problem = schema_problem(self.data)
        if problem is not None:
            raise ValueError(f"raw inputs do not fit the collector schema at {problem}")

    @property
    def euid(self) -> int | None:
        v = self.data.get("collector", {}).get("euid")
        return int(v) if v is not None else None

    @property
    def kernel_release(self) -> str:
        return str(self.data.get("uname", {}).get("release", ""))

    # -- CPUID / MSR --------------------------------------------------------------------------
    @property
    def cpuid_source(self) -> str:
        """Where CPUID came from: "/dev/cpu/0/cpuid" or "CPUID instruction (...)"."""
        return str(self.data.get("cpuid", {}).get("source", "/dev/cpu/0/cpuid"))

    def cpuid(self, leaf: int) -> tuple[int, int, int, int]:
        sec = self.data.get("cpuid", {})
        src = f"{self.cpuid_source} leaf 0x{leaf:08x}"
        if "error" in sec:
            mod = self.data.get("modprobe", {}).get("cpuid")
            detail = {"error": sec["error"], "modprobe": mod}
            if "instruction" in sec:   # the fallback failed too (not x86-64, no executable page)
                detail["instruction"] = sec["instruction"]
            raise Unreadable(f"CPUID not readable: {sec['error']}", src, detail,
                             "load the cpuid module (modprobe cpuid; CONFIG_X86_CPUID) and " + _root_hint(self))
        val = sec.get("leaves", {}).get(f"0x{leaf:08x}")
        if isinstance(val, list) and len(val) == 4:
            return (int(val[0]), int(val[1]), int(val[2]), int(val[3]))
        raise Unreadable(f"CPUID leaf 0x{leaf:08x} not readable: {val}", src, val, _root_hint(self))

    def msr(self, addr: int) -> int:
        sec = self.data.get("msr", {})
        src = f"{sec.get('source', '/dev/cpu/0/msr')} MSR 0x{addr:08x}"
        if "error" in sec:
            mod = self.data.get("modprobe", {}).get("msr")
            raise Unreadable(f"MSR 0x{addr:08x} not readable: {sec['error']}", src,
                             {"error": sec["error"], "modprobe": mod},
                             "load the msr module (modprobe msr; CONFIG_X86_MSR) and " + _root_hint(self))
        val = sec.get("values", {}).get(f"0x{addr:08x}", {})
        if "value" in val:
            return int(val["value"])
        raise Unreadable(f"MSR 0x{addr:08x} not readable: {val.get('error', 'not collected')}", src, val,
                         _root_hint(self))

    # -- files --------------------------------------------------------------------------------
    def file(self, path: str) -> str | None:
        """Text of ``path``; None when it does not exist; Unreadable on other errors."""
        val = self.data.get("files", {}).get(path)
        if val is None:
            raise Unreadable(f"{path} was not collected", path, None, "re-collect with this sevkit version")
        if "text" in val:
            return str(val["text"])
        if val.get("errno") == errno.ENOENT:
            return None
        raise Unreadable(f"{path} not readable: {val.get('error')}", path, val, _root_hint(self))

    def listdir(self, path: str) -> list[str] | None:
        val = self.data.get("dirs", {}).get(path)
        if val is None:
            raise Unreadable(f"{path} was not collected", path, None, "re-collect with this sevkit version")
        if "entries" in val:
            return [str(e) for e in val["entries"]]
        if val.get("errno") == errno.ENOENT:
            return None
        raise Unreadable(f"{path} not listable: {val.get('error')}", path, val, _root_hint(self))

    def section(self, name: str) -> dict[str, Any]:
        val = self.data.get(name)
        return val if isinstance(val, dict) else {}

    def device(self, path: str) -> dict[str, Any]:
        return dict(self.data.get("devices", {}).get(path, {"exists": False}))

    def ioctl(self, name: str) -> dict[str, Any] | None:
        val = self.data.get("ioctl", {}).get(name)
        return dict(val) if isinstance(val, dict) else None

    def to_json(self) -> dict[str, Any]:
        return self.data
