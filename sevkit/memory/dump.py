"""Reading a running guest's memory from the host, three ways, each saying what it covered.

    elf       QMP dump-guest-memory (paging=false), an ELF whose PT_LOAD headers give the
              guest-physical ranges; detach=true, then wait for DUMP_COMPLETED
    pmemsave  QMP pmemsave of every guest RAM range (q35 splits RAM >= 2816 MiB around the
              PCI hole, qemu-tcg-notes P9), one raw file per range
    procmem   /proc/<qemu pid>/mem at the RAM block's host address (HMP gpa2hva, checked
              against /proc/<pid>/maps), streamed into the scanner: no file, no disk (P10)

Dump files are created 0600 in a scratch folder (never the evidence folder) after checking
free space, and removed after the scan unless ``keep`` is set. Nothing here knows pytest or
GuestVM: callers pass a QMP-like object, a pid and a RAM size.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import DumpError, SevkitError
from .pages import PAGE, PageView, examine_reader, procmem_reader, segment_reader, tally
from .scan import STREAM_CHUNK, Hit, ScanResult, StreamScanner, elf_segments, scan_file

MiB = 1 << 20
GiB = 1 << 30
FOUR_GIB = 4 * GiB
METHODS = ("procmem", "elf", "pmemsave")
SPACE_MARGIN = 64 * MiB        # ELF headers, notes and ROM segments, plus slack


class QmpLike(Protocol):
    """What dumps need from a QMP client (sevkit.qemu.qmp.Qmp fits)."""

    def execute(self, cmd: str, args: Mapping[str, object] | None = None, timeout: float = 30.0) -> Any: ...

    def event_wait(self, name: str, timeout: float) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class RamRange:
    gpa: int
    size: int

    @property
    def end(self) -> int:
        return self.gpa + self.size

    def to_json(self) -> dict[str, Any]:
        return {"gpa": f"{self.gpa:#x}", "size": self.size}


def ram_ranges(ram_bytes: int, machine: str = "q35") -> list[RamRange]:
    """Guest-physical RAM layout of an x86 PC machine (QEMU hw/i386/pc_q35.c, pc_piix.c).

    q35: RAM >= 0xb0000000 (2816 MiB) keeps 2 GiB below 4 GiB and the rest from 4 GiB up.
    pc (i440fx): RAM >= 0xe0000000 keeps 3 GiB below 4 GiB.
    """
    if machine.startswith("q35") or "q35" in machine:
        lowmem = 0x80000000 if ram_bytes >= 0xB0000000 else ram_bytes
    else:
        lowmem = 0xC0000000 if ram_bytes >= 0xE0000000 else ram_bytes
    out = [RamRange(0, lowmem)]
    if ram_bytes > lowmem:
        out.append(RamRange(FOUR_GIB, ram_bytes - lowmem))
    return out


@dataclass
class Coverage:
    """How much of the guest's RAM a method read, and why the rest was not read."""

    method: str
    ram_bytes: int
    ranges_read: list[RamRange] = field(default_factory=list)
    unreadable: list[tuple[RamRange, str]] = field(default_factory=list)
    private_readable: bool = True     # False: private memory is not reachable by the host at all
    notes: list[str] = field(default_factory=list)
    private_unreadable: list[RamRange] = field(default_factory=list)   # where private pages may live

    @property
    def bytes_read(self) -> int:
        return sum(r.size for r in self.ranges_read)

    @property
    def complete(self) -> bool:
        return self.bytes_read >= self.ram_bytes and not self.unreadable and self.private_readable

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "ram_bytes": self.ram_bytes,
            "bytes_read": self.bytes_read,
            "fraction": round(self.bytes_read / self.ram_bytes, 6) if self.ram_bytes else None,
            "complete": self.complete,
            "ranges_read": [r.to_json() for r in self.ranges_read],
            "unreadable": [{**r.to_json(), "reason": why} for r, why in self.unreadable],
            "private_memory_readable_by_host": self.private_readable,
            "private_unreadable_ranges": [r.to_json() for r in self.private_unreadable],
            "notes": self.notes,
        }


@dataclass
class MemoryScan:
    """One method's acquisition + scan: what it read, what it found, how long it took."""

    method: str
    coverage: Coverage
    result: ScanResult
    acquire_seconds: float
    scan_seconds: float
    files: list[str] = field(default_factory=list)   # dump file names (deleted unless kept)
    kept: bool = False
    # The secret's pages as each method saw them (this method's own, plus any examined separately).
    page_views: dict[str, list[PageView]] = field(default_factory=dict)

    def count(self, needle: bytes) -> int:
        return self.result.count(needle)

    def hits(self, needle: bytes) -> list[Hit]:
        return [h for h in self.result.hits if h.needle == needle]

    def to_json(self) -> dict[str, Any]:
        """The evidence summary. Needles appear only as SHA-256 digests, never as bytes."""
        return {
            "method": self.method,
            "coverage": self.coverage.to_json(),
            "scan": self.result.to_json(hide_needles=True),
            "acquire_seconds": round(self.acquire_seconds, 3),
            "scan_seconds": round(self.scan_seconds, 3),
            "dump_files": self.files,
            "dump_files_kept": self.kept,
            "secret_pages": {m: {"pages": len(v), "outcomes": tally(v)} for m, v in self.page_views.items()},
        }


# --- scratch space -----------------------------------------------------------------------

def check_space(folder: Path, need: int, *, statvfs: Callable[[str], Any] = os.statvfs) -> int:
    """Raise DumpError unless ``folder`` has ``need`` bytes free; return what is free."""
    try:
        st = statvfs(str(folder))
    except OSError as exc:
        raise DumpError(f"dump folder {folder}: {exc.strerror}", evidence={"folder": str(folder)}) from None
    free = int(st.f_bavail) * int(st.f_frsize)
    if free < need:
        raise DumpError(f"not enough room for a memory dump in {folder}: need {need / MiB:.0f} MiB, "
                        f"{free / MiB:.0f} MiB free", evidence={"folder": str(folder), "need": need, "free": free})
    return free


def _new_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 before QEMU writes it (QEMU truncates, keeps the mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise DumpError(f"cannot create dump file {path}: {exc.strerror}", evidence={"path": str(path)}) from None
    os.close(fd)


def _secure(path: Path) -> None:
    os.chmod(path, 0o600)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode != 0o600:
        raise DumpError(f"dump file {path} has mode {mode:o}, not 600", evidence={"path": str(path)})


def remove_dumps(paths: Iterable[Path]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _qmp(qmp: QmpLike, cmd: str, args: Mapping[str, object] | None, timeout: float) -> Any:
    """A QMP call whose failure (QmpError, timeout) becomes a DumpError with QEMU's words."""
    try:
        return qmp.execute(cmd, args, timeout=timeout)
    except DumpError:
        raise
    except SevkitError as exc:
        raise DumpError(f"{cmd}: {exc}", evidence={"command": cmd, **exc.evidence}) from exc


def _with_space(exc: DumpError, folder: Path) -> DumpError:
    """QEMU words a full disk as 'An IO error has occurred': add how much room is left."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return exc
    return DumpError(f"{exc.message} (dump folder {folder}: {free / MiB:.0f} MiB free)",
                     evidence={**exc.evidence, "folder": str(folder), "free_after": free})


def _timeout(ram_bytes: int, per_gib: float) -> float:
    return max(30.0, per_gib * ram_bytes / GiB)


# --- the three methods -------------------------------------------------------------------

def _unique(stem: str, suffix: str) -> str:
    """A fresh file name: kept dumps of earlier scans are never overwritten or collided with."""
    return f"{stem}-{time.strftime('%H%M%S')}-{secrets.token_hex(2)}{suffix}"


def dump_elf(qmp: QmpLike, folder: Path, ram_bytes: int, *, per_gib: float = 60.0, name: str | None = None,
             statvfs: Callable[[str], Any] = os.statvfs) -> Path:
    """QMP dump-guest-memory into ``folder/name`` (ELF, paging=false, detached). Returns the path.

    Raises DumpError (no room, QMP refused, DUMP_COMPLETED with an error, timeout).
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_space(folder, ram_bytes + SPACE_MARGIN, statvfs=statvfs)
    path = folder / (name or _unique("guest", ".elf"))
    _new_private_file(path)
    timeout = _timeout(ram_bytes, per_gib)
    try:
        _qmp(qmp, "dump-guest-memory", {"paging": False, "protocol": f"file:{path}", "detach": True}, 30.0)
        try:
            ev = qmp.event_wait("DUMP_COMPLETED", timeout)
        except SevkitError as exc:
            raise DumpError(f"dump-guest-memory did not complete (deadline {timeout:.0f}s): {exc}",
                            evidence={"path": str(path), "timeout_s": timeout}) from exc
        data = ev.get("data", {}) or {}
        if data.get("error"):
            raise DumpError(f"dump-guest-memory failed: {data['error']}",
                            evidence={"path": str(path), "event": data})
        _secure(path)
        return path
    except DumpError as exc:
        remove_dumps([path])
        raise _with_space(exc, folder) from exc
    except BaseException:
        remove_dumps([path])
        raise


def dump_pmemsave(qmp: QmpLike, folder: Path, ranges: Sequence[RamRange], *, per_gib: float = 60.0,
                  statvfs: Callable[[str], Any] = os.statvfs) -> list[tuple[RamRange, Path]]:
    """QMP pmemsave of each RAM range into its own 0600 file. Returns (range, path) pairs."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_space(folder, sum(r.size for r in ranges) + SPACE_MARGIN, statvfs=statvfs)
    out: list[tuple[RamRange, Path]] = []
    try:
        for r in ranges:
            path = folder / _unique(f"pmem-{r.gpa:#x}", ".raw")
            _new_private_file(path)
            out.append((r, path))
            _qmp(qmp, "pmemsave", {"val": r.gpa, "size": r.size, "filename": str(path)},
                 _timeout(r.size, per_gib))
            _secure(path)
            if path.stat().st_size != r.size:
                raise DumpError(f"pmemsave wrote {path.stat().st_size} of {r.size} bytes for gpa {r.gpa:#x}",
                                evidence={"path": str(path)})
        return out
    except DumpError as exc:
        remove_dumps(p for _, p in out)
        raise _with_space(exc, folder) from exc
    except BaseException:
        remove_dumps(p for _, p in out)
        raise


_GPA2HVA = re.compile(r"Host virtual address for (0x[0-9a-fA-F]+) \(([^)]*)\) is (0x[0-9a-fA-F]+)")


def gpa2hva(qmp: QmpLike, gpa: int) -> tuple[int, str]:
    """Host virtual address and RAM block name of a guest-physical address (HMP gpa2hva)."""
    out = str(_qmp(qmp, "human-monitor-command", {"command-line": f"gpa2hva {gpa:#x}"}, 10.0))
    m = _GPA2HVA.search(out)
    if not m:
        raise DumpError(f"gpa2hva {gpa:#x}: unexpected answer {out.strip()[:200]!r}",
                        evidence={"gpa": gpa, "answer": out[:500]})
    return int(m.group(3), 16), m.group(2)


@dataclass(frozen=True, slots=True)
class Mapping_:
    start: int
    end: int
    perms: str
    path: str


def read_maps(pid: int) -> list[Mapping_]:
    try:
        text = Path(f"/proc/{pid}/maps").read_text()
    except OSError as exc:
        raise DumpError(f"cannot read /proc/{pid}/maps: {exc.strerror}", evidence={"pid": pid}) from None
    out = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        lo, hi = parts[0].split("-")
        out.append(Mapping_(int(lo, 16), int(hi, 16), parts[1], parts[5] if len(parts) > 5 else ""))
    return out


Span = tuple[int, int]


def mapped_spans(maps: Sequence[Mapping_], start: int, size: int) -> tuple[list[Span], list[Span]]:
    """Split [start, start+size) into readable (mapped 'r') and unmapped spans, as (offset, length)."""
    readable: list[tuple[int, int]] = []
    cur = start
    end = start + size
    for m in sorted(maps, key=lambda m: m.start):
        if m.end <= cur or "r" not in m.perms:
            continue
        if m.start >= end:
            break
        if m.start > cur:
            break    # a hole at cur
        hi = min(m.end, end)
        readable.append((cur - start, hi - cur))
        cur = hi
        if cur >= end:
            break
    # anything not covered contiguously from the start is reported missing (conservative)
    missing = [] if cur >= end else [(cur - start, end - cur)]
    merged: list[tuple[int, int]] = []
    for off, ln in readable:
        if merged and merged[-1][0] + merged[-1][1] == off:
            merged[-1] = (merged[-1][0], merged[-1][1] + ln)
        else:
            merged.append((off, ln))
    return merged, missing


def scan_procmem(pid: int, qmp: QmpLike, ranges: Sequence[RamRange], needles: Sequence[bytes], *,
                 chunk: int = STREAM_CHUNK, entropy_every: int = 256,
                 private_readable: bool = True, private_reason: str = "") -> MemoryScan:
    """Stream each RAM range from /proc/<pid>/mem into the scanner; hits carry gpas as offsets."""
    t0 = time.perf_counter()
    cov = Coverage("procmem", sum(r.size for r in ranges), private_readable=private_readable)
    if not private_readable:
        cov.notes.append(private_reason)
    maps = read_maps(pid)
    plan: list[tuple[RamRange, int, str]] = []
    for r in ranges:
        hva, block = gpa2hva(qmp, r.gpa)
        spans, missing = mapped_spans(maps, hva, r.size)
        for off, ln in missing:
            cov.unreadable.append((RamRange(r.gpa + off, ln), f"not mapped in QEMU at {hva + off:#x}"))
        for off, ln in spans:
            plan.append((RamRange(r.gpa + off, ln), hva + off, block))
        cov.notes.append(f"gpa {r.gpa:#x}+{r.size:#x} -> {block} at host {hva:#x}")
    scanner = StreamScanner(needles, entropy_every=entropy_every, to_gpa=lambda off: off)
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError as exc:
        raise DumpError(f"cannot open /proc/{pid}/mem: {exc.strerror} (root or ptrace rights over QEMU needed)",
                        evidence={"pid": pid}) from None
    try:
        for r, hva, _block in plan:
            # the scanner's offsets are guest-physical: restart the stream at this range's gpa
            scanner.carry, scanner.pos = b"", r.gpa
            done = 0
            while done < r.size:
                n = min(chunk, r.size - done)
                at = hva + done

                def read_at(view: memoryview, at: int = at) -> int:
                    return os.preadv(fd, [view], at)
                try:   # straight into the scanner's buffer: no copy per chunk
                    got = scanner.feed_from(read_at, n)
                except OSError as exc:
                    cov.unreadable.append((RamRange(r.gpa + done, r.size - done),
                                           f"read failed at host {at:#x}: {exc.strerror}"))
                    break
                if got <= 0:
                    cov.unreadable.append((RamRange(r.gpa + done, r.size - done), "short read (EOF)"))
                    break
                done += got
            if done:
                cov.ranges_read.append(RamRange(r.gpa, done))
    finally:
        os.close(fd)
    if cov.unreadable and _exits_soon(pid):
        # QEMU exited under the read: what was read is no longer a picture of the guest's memory
        raise DumpError(f"QEMU (pid {pid}) exited during the /proc/{pid}/mem scan after "
                        f"{cov.bytes_read >> 20} of {cov.ram_bytes >> 20} MiB",
                        evidence={"pid": pid, "coverage": cov.to_json()})
    res = scanner.result()
    res.bytes_scanned = cov.bytes_read
    elapsed = time.perf_counter() - t0
    res.seconds = elapsed
    return MemoryScan("procmem", cov, res, acquire_seconds=elapsed, scan_seconds=elapsed)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited QEMU its parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _exits_soon(pid: int, grace: float = 2.0) -> bool:
    """True if ``pid`` is gone within ``grace`` s (a killed QEMU drops its memory before it is a zombie,
    so a short read can be seen a moment before the exit)."""
    end = time.monotonic() + grace
    while _alive(pid):
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)
    return True


def _ranges_from_segments(result: ScanResult, ram: Sequence[RamRange]) -> tuple[list[RamRange], list[RamRange]]:
    """ELF segments that are guest RAM, and RAM not present in the ELF."""
    segs = result.segments or []
    read: list[RamRange] = []
    for s in segs:
        for r in ram:
            lo, hi = max(s.gpa, r.gpa), min(s.gpa + s.size, r.end)
            if hi > lo:
                read.append(RamRange(lo, hi - lo))
    missing: list[RamRange] = []
    for r in ram:
        cur = r.gpa
        for x in sorted((x for x in read if r.gpa <= x.gpa < r.end), key=lambda x: x.gpa):
            if x.gpa > cur:
                missing.append(RamRange(cur, x.gpa - cur))
            cur = max(cur, x.end)
        if cur < r.end:
            missing.append(RamRange(cur, r.end - cur))
    return read, missing


def acquire_and_scan(method: str, *, qmp: QmpLike, pid: int, ram_bytes: int, needles: Sequence[bytes],
                     folder: Path, machine: str = "q35", keep: bool = False, per_gib: float = 60.0,
                     private_readable: bool = True, private_reason: str = "",
                     pages: Mapping[int, str] | None = None,
                     statvfs: Callable[[str], Any] = os.statvfs) -> MemoryScan:
    """Read guest memory with ``method`` and scan it. Dump files are removed unless ``keep``.
    ``pages`` (page gpa -> holder): the secret's pages, examined in this method's view (needles[0])."""
    ram = ram_ranges(ram_bytes, machine)
    if method == "procmem":
        ms = scan_procmem(pid, qmp, ram, needles, private_readable=private_readable,
                          private_reason=private_reason)
        if not private_readable:
            ms.coverage.private_unreadable = list(ram)
        if pages:
            ms.page_views["procmem"] = examine_reader("procmem", pages, needles[0],
                                                      procmem_reader(pid, hva_lookup(qmp, ram)))
        return ms
    if method not in METHODS:
        raise DumpError(f"unknown dump method {method!r}; known: {', '.join(METHODS)}")
    files: list[Path] = []
    try:
        t0 = time.perf_counter()
        if method == "elf":
            path = dump_elf(qmp, folder, ram_bytes, per_gib=per_gib, statvfs=statvfs)
            files = [path]
            t1 = time.perf_counter()
            res = scan_file(path, needles)
            if res.segments is None:
                raise DumpError(f"dump-guest-memory wrote {path.name}, which is not an ELF file")
            read, missing = _ranges_from_segments(res, ram)
            cov = Coverage("elf", ram_bytes, read, [(m, "absent from the ELF program headers") for m in missing],
                           private_readable=private_readable)
            cov.notes.append(f"{len(res.segments)} PT_LOAD segments, {sum(s.size for s in res.segments)} bytes")
            seen = examine_reader("elf", pages, needles[0], segment_reader(path, res.segments)) if pages else []
        else:
            pairs = dump_pmemsave(qmp, folder, ram, per_gib=per_gib, statvfs=statvfs)
            files = [p for _, p in pairs]
            t1 = time.perf_counter()
            parts = []
            for r, p in pairs:
                part = scan_file(p, needles)
                base = r.gpa
                part.hits = [Hit(h.needle, h.offset, base + h.offset) for h in part.hits]
                parts.append(part)
            res = merge_results(parts)
            seen = examine_reader("pmemsave", pages, needles[0], _pmem_reader(pairs)) if pages else []
            cov = Coverage("pmemsave", ram_bytes, [r for r, _ in pairs], private_readable=private_readable)
            if len(ram) > 1:
                cov.notes.append("RAM is split around the PCI hole: one pmemsave per range (P9)")
        if not private_readable:
            cov.notes.append(private_reason)
            cov.private_unreadable = list(ram)
        t2 = time.perf_counter()
        return MemoryScan(method, cov, res, t1 - t0, t2 - t1, [p.name for p in files], keep,
                          {method: seen} if pages else {})
    finally:
        if not keep:
            remove_dumps(files)


def hva_lookup(qmp: QmpLike, ram: Sequence[RamRange]) -> Callable[[int], int | None]:
    """gpa -> QEMU's host address (HMP gpa2hva once per RAM range; None outside guest RAM)."""
    bases: dict[int, int] = {}

    def hva(gpa: int) -> int | None:
        for r in ram:
            if r.gpa <= gpa < r.end:
                if r.gpa not in bases:
                    bases[r.gpa] = gpa2hva(qmp, r.gpa)[0]
                return bases[r.gpa] + gpa - r.gpa
        return None
    return hva


def _pmem_reader(pairs: Sequence[tuple[RamRange, Path]]) -> Callable[[int], bytes | None]:
    def read(gpa: int) -> bytes | None:
        for r, path in pairs:
            if r.gpa <= gpa and gpa + PAGE <= r.end:
                with open(path, "rb") as fh:
                    fh.seek(gpa - r.gpa)
                    return fh.read(PAGE)
        return None
    return read


def examine_pages(method: str, *, qmp: QmpLike, pid: int, ram_bytes: int, pages: Mapping[int, str],
                  needle: bytes, folder: Path, machine: str = "q35", per_gib: float = 60.0,
                  statvfs: Callable[[str], Any] = os.statvfs) -> list[PageView]:
    """The secret's pages in ``method``'s view alone (no full scan): procmem reads them in place,
    pmemsave saves just those pages, elf dumps all RAM once (QEMU cannot dump a page list)."""
    ram = ram_ranges(ram_bytes, machine)
    if method == "procmem":
        return examine_reader("procmem", pages, needle, procmem_reader(pid, hva_lookup(qmp, ram)))
    if method not in METHODS:
        raise DumpError(f"unknown dump method {method!r}; known: {', '.join(METHODS)}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if method == "pmemsave":
        path = folder / _unique("page", ".raw")
        _new_private_file(path)
        try:
            def read(gpa: int) -> bytes | None:
                if not any(r.gpa <= gpa and gpa + PAGE <= r.end for r in ram):
                    return None
                _qmp(qmp, "pmemsave", {"val": gpa, "size": PAGE, "filename": str(path)}, 10.0)
                return path.read_bytes()
            return examine_reader("pmemsave", pages, needle, read)
        finally:
            remove_dumps([path])
    path = dump_elf(qmp, folder, ram_bytes, per_gib=per_gib, statvfs=statvfs)
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            segs = elf_segments(mm, path.stat().st_size)
        if segs is None:
            raise DumpError(f"dump-guest-memory wrote {path.name}, which is not an ELF file")
        return examine_reader("elf", pages, needle, segment_reader(path, segs))
    finally:
        remove_dumps([path])


def merge_results(parts: Sequence[ScanResult]) -> ScanResult:
    """One ScanResult from several (ranges or files) scanned with the same needles."""
    first = parts[0]
    counts = {n: sum(p.count(n) for p in parts) for n in first.needles}
    hits = [h for p in parts for h in p.hits]
    ent = None
    if any(p.entropy for p in parts):
        from .scan import EntropyStats
        ent = EntropyStats()
        for p in parts:
            if p.entropy:
                ent.pages_total += p.entropy.pages_total
                ent.pages_sampled += p.entropy.pages_sampled
                ent.zero_pages += p.entropy.zero_pages
                ent.high_entropy_pages += p.entropy.high_entropy_pages
                ent.values.extend(p.entropy.values)
    return ScanResult(list(first.needles), hits, counts, sum(p.bytes_scanned for p in parts),
                      sum(p.seconds for p in parts), max(p.workers for p in parts), ent,
                      notes=[n for p in parts for n in p.notes])


def procmem_readable(pid: int) -> bool:
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return False
    os.close(fd)
    return True


def default_method(pid: int, ram_bytes: int, machine: str = "q35") -> str:
    """The cheapest method that covers all guest RAM: /proc/<pid>/mem (no disk) when QEMU's
    memory is readable, else the ELF dump (its headers state the ranges; pmemsave needs the
    layout guessed right)."""
    del ram_bytes, machine
    return "procmem" if procmem_readable(pid) else "elf"


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free
