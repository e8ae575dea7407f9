"""Builders and fakes for the memory-dump self-tests (SYNTHETIC: everything here is built in code).

``make_elf`` / ``make_elf32``: minimal ELF64 / ELF32 core files laid out as QEMU's dump-guest-memory writes
them; ``FakeQmp``: answers like QEMU 7.2; ``CHILD``: a real process holding fake "guest RAM".
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sevkit.errors import QmpError


def make_elf(segments: list[tuple[int, bytes]], *, xnum: bool = False, notes: bytes = b"NOTE" * 8) -> bytes:
    """A minimal ELF64 core file: PT_NOTE + one PT_LOAD per (gpa, data), laid out after the headers."""
    phnum = 1 + len(segments)
    phoff = 64
    shoff = phoff + phnum * 56
    data_off = shoff + (64 if xnum else 0)
    out = bytearray(data_off)
    out[0:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", out, 16, 4, 62, 1, 0, phoff, shoff if xnum else 0, 0, 64, 56,
                     0xFFFF if xnum else phnum, 64, 1 if xnum else 0, 0)
    if xnum:   # section header 0 carries the real program-header count in sh_info
        struct.pack_into("<IIQQQQII", out, shoff, 0, 0, 0, 0, 0, 0, 0, phnum)
    body = bytearray(notes)
    struct.pack_into("<IIQQQQQQ", out, phoff, 4, 0, data_off, 0, 0, len(notes), len(notes), 0)  # PT_NOTE
    for i, (gpa, blob) in enumerate(segments):
        off = data_off + len(body)
        struct.pack_into("<IIQQQQQQ", out, phoff + (i + 1) * 56, 1, 6, off, 0, gpa, len(blob), len(blob), 0)
        body += blob
    return bytes(out + body)


def make_elf32(segments: list[tuple[int, bytes]], *, xnum: bool = False, notes: bytes = b"NOTE" * 8) -> bytes:
    """SYNTHETIC: a minimal ELF32 core as QEMU writes one when the first vCPU is not in long mode and no RAM
    block ends above 4 GiB (target/i386/arch_dump.c cpu_get_dump_info(); dump/dump.c write_elf32_load()):
    Elf32_Ehdr (52 bytes), Elf32_Phdr (32 bytes), EM_386, e_phnum PN_XNUM
    with the count in section header 0's sh_info when asked."""
    phnum = 1 + len(segments)
    phoff = 52
    shoff = phoff + phnum * 32
    data_off = shoff + (40 if xnum else 0)
    out = bytearray(data_off)
    out[0:16] = b"\x7fELF\x01\x01\x01" + bytes(9)
    struct.pack_into("<HHIIIIIHHHHHH", out, 16, 4, 3, 1, 0, phoff, shoff if xnum else 0, 0, 52, 32,
                     0xFFFF if xnum else phnum, 40, 1 if xnum else 0, 0)
    if xnum:   # Elf32_Shdr: sh_info (offset 0x1c) carries the real program-header count
        struct.pack_into("<IIIIIIIIII", out, shoff, 0, 0, 0, 0, 0, 0, 0, phnum, 0, 0)
    body = bytearray(notes)
    struct.pack_into("<IIIIIIII", out, phoff, 4, data_off, 0, 0, len(notes), len(notes), 0, 0)  # PT_NOTE
    for i, (gpa, blob) in enumerate(segments):
        off = data_off + len(body)
        struct.pack_into("<IIIIIIII", out, phoff + (i + 1) * 32, 1, off, gpa, gpa, len(blob), len(blob), 6, 0)
        body += blob
    return bytes(out + body)


class FakeQmp:
    """Answers like QEMU 7.2; ``fail`` makes a command fail; records every call."""

    def __init__(self, hva: int = 0, fail: str = "", dump_error: str = "") -> None:
        self.calls: list[tuple[str, Any]] = []
        self.hva, self.fail, self.dump_error = hva, fail, dump_error

    def execute(self, cmd: str, args: Mapping[str, object] | None = None, timeout: float = 30.0) -> Any:
        self.calls.append((cmd, dict(args or {})))
        if cmd == self.fail:
            raise QmpError(f"QMP {cmd} failed: GenericError: injected", evidence={"command": cmd})
        if cmd == "human-monitor-command":
            line = str((args or {})["command-line"])
            if line.startswith("gpa2hva"):
                gpa = int(line.split()[1], 16)
                return f"Host virtual address for {gpa:#x} (pc.ram) is {self.hva + gpa:#x}\r\n"
        if cmd == "dump-guest-memory":   # write a partial file, as QEMU does before failing
            Path(str(args["protocol"]).removeprefix("file:")).write_bytes(b"\x7fELF partial")  # type: ignore[index]
        return {}

    def event_wait(self, name: str, timeout: float) -> dict[str, Any]:
        if self.dump_error:
            return {"event": name, "data": {"result": {"status": "failed"}, "error": self.dump_error}}
        return {"event": name, "data": {"result": {"status": "completed"}}}


CHILD = r"""
import ctypes, mmap, sys
size = int(sys.argv[2])
m = mmap.mmap(-1, size)
needle = bytes.fromhex(sys.argv[1])
for off in (0, 3 * 4096 - 10, size // 2, size - len(needle)):
    m[off:off + len(needle)] = needle
print(hex(ctypes.addressof(ctypes.c_char.from_buffer(m))), flush=True)
sys.stdin.read()
"""
