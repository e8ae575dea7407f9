"""The pure scanner: many needles over a byte stream, a buffer or a file; hits, gpas, entropy.

Speed comes from glibc's ``memmem`` (SIMD-assisted, about 3.5x CPython's ``bytes.find`` on
random data here; ``bytes.find`` remains the fallback without glibc), called through ctypes on
``mmap``ed page-cache pages: the data is walked in cache-sized chunks and every needle is
searched in a chunk while it is still hot in the CPU cache, so memory is read once however
many needles there are. Files are split into ranges scanned by forked workers (no copies).
Every range or chunk overlaps the next by ``longest needle - 1`` bytes and a hit is reported
only by the range it starts in, so hits straddling a boundary are found once.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import mmap
import os
import pickle
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InputError
from ..userfiles import open_regular, shown

PAGE = 4096
CHUNK = 1 << 20            # searched per needle while in L2 (4 MiB here)
STREAM_CHUNK = 16 << 20    # read size for streams (/proc/<pid>/mem)
MAX_OFFSETS = 1000         # offsets kept per needle; every hit is still counted
HIGH_ENTROPY = 7.5         # bits/byte: a 4 KiB page of ciphertext measures about 7.95
ENTROPY_SAMPLES = 1024     # pages sampled per scan for entropy statistics (about 0.1 ms each)


@dataclass(frozen=True, slots=True)
class Segment:
    """One PT_LOAD of an ELF dump (or one range of a raw dump): file bytes -> guest-physical."""

    offset: int   # in the file
    gpa: int      # guest-physical address of the first byte
    size: int     # bytes present in the file

    def contains(self, off: int) -> bool:
        return self.offset <= off < self.offset + self.size


@dataclass(frozen=True, slots=True)
class Hit:
    needle: bytes
    offset: int               # byte offset in the scanned stream or file
    gpa: int | None = None    # guest-physical address, when a layout is known

    def to_json(self, *, hide_needle: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"offset": self.offset}
        d["needle"] = needle_id(self.needle) if hide_needle else self.needle.hex()
        if self.gpa is not None:
            d["gpa"] = self.gpa
            d["gpa_hex"] = f"{self.gpa:#x}"
        return d


def needle_id(needle: bytes) -> str:
    """How reports name a secret needle: its SHA-256, never its bytes."""
    import hashlib
    return "sha256:" + hashlib.sha256(needle).hexdigest()


@dataclass
class EntropyStats:
    """Shannon entropy (bits per byte) of sampled 4 KiB pages. Zero pages are counted apart."""

    pages_total: int = 0
    pages_sampled: int = 0
    zero_pages: int = 0
    high_entropy_pages: int = 0          # >= HIGH_ENTROPY
    values: list[float] = field(default_factory=list)   # of the non-zero sampled pages

    def add(self, page: bytes | memoryview) -> None:
        self.pages_sampled += 1
        data = bytes(page)
        if data.count(0) == len(data):   # a C loop, unlike any() over a memoryview
            self.zero_pages += 1
            return
        h = page_entropy(data)
        self.values.append(h)
        if h >= HIGH_ENTROPY:
            self.high_entropy_pages += 1

    def to_json(self) -> dict[str, Any]:
        vals = sorted(self.values)
        nonzero = len(vals)
        return {
            "pages_total": self.pages_total,
            "pages_sampled": self.pages_sampled,
            "zero_pages_sampled": self.zero_pages,
            "nonzero_pages_sampled": nonzero,
            "high_entropy_threshold": HIGH_ENTROPY,
            "high_entropy_pages": self.high_entropy_pages,
            "high_entropy_fraction_of_nonzero": round(self.high_entropy_pages / nonzero, 4) if nonzero else None,
            "entropy_min": round(vals[0], 4) if vals else None,
            "entropy_median": round(vals[nonzero // 2], 4) if vals else None,
            "entropy_max": round(vals[-1], 4) if vals else None,
        }


_CLOG2C = [0.0] + [c * math.log2(c) for c in range(1, PAGE + 1)]   # c*log2(c), looked up in C


def page_entropy(page: bytes | memoryview) -> float:
    """Shannon entropy of one page in bits per byte (0 .. 8): log2(n) - sum(c*log2(c))/n."""
    data = bytes(page)
    n = len(data)
    if n == 0:
        return 0.0
    counts = Counter(data).values()
    total = sum(map(_CLOG2C.__getitem__, counts)) if n <= PAGE else sum(c * math.log2(c) for c in counts)
    return max(0.0, math.log2(n) - total / n)   # max(): no -0.0 for a one-value page


@dataclass
class ScanResult:
    needles: list[bytes]
    hits: list[Hit]
    counts: dict[bytes, int]
    bytes_scanned: int
    seconds: float
    workers: int = 1
    entropy: EntropyStats | None = None
    segments: list[Segment] | None = None     # the ELF layout, when the input was an ELF dump
    notes: list[str] = field(default_factory=list)

    def count(self, needle: bytes) -> int:
        return self.counts.get(needle, 0)

    def to_json(self, *, hide_needles: bool = False) -> dict[str, Any]:
        def name(n: bytes) -> str:
            return needle_id(n) if hide_needles else n.hex()
        return {
            "hits": [h.to_json(hide_needle=hide_needles) for h in self.hits],
            "counts": {name(n): self.counts.get(n, 0) for n in self.needles},
            "bytes": self.bytes_scanned,
            "seconds": round(self.seconds, 4),
            "gbps": round(self.bytes_scanned / self.seconds / 1e9, 3) if self.seconds > 0 else None,
            "workers": self.workers,
            "offsets_truncated": any(self.counts.get(n, 0) > MAX_OFFSETS for n in self.needles),
            "elf_segments": None if self.segments is None else
            [{"offset": s.offset, "gpa": s.gpa, "size": s.size} for s in self.segments],
            "entropy": self.entropy.to_json() if self.entropy else None,
            "notes": self.notes,
        }


def check_needles(needles: Iterable[bytes]) -> list[bytes]:
    """Deduplicated needles in their order; an empty list or an empty needle is an InputError."""
    out: list[bytes] = []
    for n in needles:
        if not isinstance(n, bytes | bytearray) or len(n) == 0:
            raise InputError("scan: a needle must be a non-empty byte string")
        if bytes(n) not in out:
            out.append(bytes(n))
    if not out:
        raise InputError("scan: give at least one needle")
    return out


def _find_all(buf: Any, needle: bytes, start: int, end: int, report_below: int,
              sink: list[int], limit: int) -> int:
    """Count occurrences of needle starting in [start, report_below) that end before ``end``.

    ``buf.find`` is bytes.find or mmap.find; overlapping occurrences are all counted
    (the next search starts one byte after the last hit).
    """
    n = 0
    pos = buf.find(needle, start, end)
    while pos != -1 and pos < report_below:
        n += 1
        if len(sink) < limit:
            sink.append(pos)
        pos = buf.find(needle, pos + 1, end)
    return n


def _scan_range(buf: Any, needles: Sequence[bytes], lo: int, hi: int, size: int,
                limit: int) -> tuple[dict[bytes, int], dict[bytes, list[int]]]:
    """Scan hits *starting* in [lo, hi) of buf (total length ``size``), chunk by chunk."""
    longest = max(len(n) for n in needles)
    counts = dict.fromkeys(needles, 0)
    offs: dict[bytes, list[int]] = {n: [] for n in needles}
    pos = lo
    while pos < hi:
        stop = min(pos + CHUNK, hi)
        end = min(stop + longest - 1, size)   # overlap: a hit starting before stop is whole
        for nd in needles:
            counts[nd] += _find_all(buf, nd, pos, end, stop, offs[nd], limit)
        pos = stop
    return counts, offs


class _CBuf:
    """A haystack at a raw address, searched with libc memmem; positions are relative to ``base``."""

    def __init__(self, base: int, keep: object = None) -> None:
        self.base = base
        self._keep = keep    # the object owning the memory stays alive as long as this does

    @classmethod
    def of_bytes(cls, data: bytes) -> _CBuf:
        ptr = ctypes.c_char_p(data)   # points into the bytes object itself, no copy
        return cls(ctypes.cast(ptr, ctypes.c_void_p).value or 0, (data, ptr))

    def find(self, needle: bytes, start: int, end: int) -> int:
        if end - start < len(needle):
            return -1
        assert _MEMMEM is not None
        r = _MEMMEM(self.base + start, end - start, needle, len(needle))
        return -1 if not r else int(r) - self.base


def _load_libc() -> tuple[Any, Any, Any]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        memmem, mmap_, munmap = libc.memmem, libc.mmap, libc.munmap
    except (OSError, AttributeError):
        return None, None, None
    memmem.restype = ctypes.c_void_p
    memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    mmap_.restype = ctypes.c_void_p
    mmap_.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return memmem, mmap_, munmap


_MEMMEM, _MMAP, _MUNMAP = _load_libc()
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0x8000)


def _haystack(data: bytes) -> Any:
    return _CBuf.of_bytes(data) if _MEMMEM is not None else data


def _worker(path: str, needles: Sequence[bytes], lo: int, hi: int, size: int,
            limit: int) -> tuple[dict[bytes, int], dict[bytes, list[int]]]:
    """Scan hits starting in [lo, hi) of the file: map only that range (plus the overlap)."""
    longest = max(len(n) for n in needles)
    with open(path, "rb") as fh:
        if _MEMMEM is None or _MMAP is None:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _scan_range(mm, needles, lo, hi, size, limit)
        map_lo = lo - lo % mmap.ALLOCATIONGRANULARITY
        length = min(hi + longest - 1, size) - map_lo
        # MAP_POPULATE maps every page-cache page up front instead of one fault per page
        addr = _MMAP(None, length, mmap.PROT_READ, mmap.MAP_SHARED | _MAP_POPULATE, fh.fileno(), map_lo)
        if addr is None or addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise InputError(f"scan: {shown(path)}: cannot map ({os.strerror(err)})")
        try:
            return _scan_range(_CBuf(addr - map_lo), needles, lo, hi, size, limit)
        finally:
            _MUNMAP(addr, length)


_Part = tuple[dict[bytes, int], dict[bytes, list[int]]]


def _forked(jobs: Sequence[tuple[str, Sequence[bytes], int, int, int, int]]) -> list[_Part]:
    """Run ``_worker`` on jobs[1:] in forked children and jobs[0] here; results come back pickled
    through pipes. Cheaper than a multiprocessing pool (no pool threads, no extra process)."""
    children: list[tuple[int, int]] = []
    try:
        for job in jobs[1:]:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:   # child: scan, send, leave without running the parent's cleanup
                code = 0
                try:
                    os.close(r)
                    try:
                        payload = pickle.dumps(("ok", _worker(*job)))
                    except BaseException as exc:  # reported to the parent as text
                        payload, code = pickle.dumps(("err", f"{type(exc).__name__}: {exc}")), 1
                    with os.fdopen(w, "wb") as fh:
                        fh.write(payload)
                finally:
                    os._exit(code)
            os.close(w)
            children.append((pid, r))
        parts = [_worker(*jobs[0])]
        for _pid, r in children:
            with os.fdopen(r, "rb") as fh:
                data = fh.read()
            status, value = pickle.loads(data) if data else ("err", "worker died without an answer")
            if status != "ok":
                raise InputError(f"scan: worker failed: {value}")
            parts.append(value)  # type: ignore[arg-type]  # ("ok", _Part) by construction
        return parts
    finally:
        for pid, _r in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def default_workers() -> int:
    return max(1, min(2, len(os.sched_getaffinity(0))))


def _merge(needles: Sequence[bytes],
           parts: Iterable[tuple[dict[bytes, int], dict[bytes, list[int]]]],
           limit: int) -> tuple[dict[bytes, int], dict[bytes, list[int]]]:
    counts = dict.fromkeys(needles, 0)
    offs: dict[bytes, list[int]] = {n: [] for n in needles}
    for c, o in parts:   # parts arrive in range order, so offsets stay sorted
        for n in needles:
            counts[n] += c[n]
            room = limit - len(offs[n])
            if room > 0:
                offs[n].extend(o[n][:room])
    return counts, offs


def _hits(needles: Sequence[bytes], offs: dict[bytes, list[int]],
          to_gpa: Callable[[int], int | None] | None) -> list[Hit]:
    hits = [Hit(n, o, to_gpa(o) if to_gpa else None) for n in needles for o in offs[n]]
    hits.sort(key=lambda h: (h.offset, h.needle))
    return hits


def _sample_entropy(buf: Any, size: int, samples: int, base: int = 0, stats: EntropyStats | None = None
                    ) -> EntropyStats:
    stats = stats or EntropyStats()
    pages = size // PAGE
    stats.pages_total += pages
    if pages == 0 or samples <= 0:
        return stats
    step = max(1, pages // samples)
    for p in range(0, pages, step):
        off = base + p * PAGE
        stats.add(buf[off:off + PAGE])
    return stats


def scan_buffer(buf: bytes | bytearray | memoryview | mmap.mmap, needles: Iterable[bytes], *,
                to_gpa: Callable[[int], int | None] | None = None, entropy_samples: int = 0,
                limit: int = MAX_OFFSETS) -> ScanResult:
    """Scan an in-memory buffer (one process)."""
    nds = check_needles(needles)
    t0 = time.perf_counter()
    data = bytes(buf)    # in-memory inputs are small; files go through scan_file
    size = len(data)
    counts, offs = _scan_range(_haystack(data), nds, 0, size, size, limit)
    ent = _sample_entropy(data, size, entropy_samples) if entropy_samples else None
    return ScanResult(nds, _hits(nds, offs, to_gpa), counts, size, time.perf_counter() - t0,
                      entropy=ent)


class StreamScanner:
    """Incremental scanner: ``feed()`` consecutive chunks, ``result()`` at the end.

    Keeps the last ``longest - 1`` bytes of each chunk so that a needle split across two
    chunks is found; a hit is reported once, by the first chunk that contains its end.
    """

    def __init__(self, needles: Iterable[bytes], *, base_offset: int = 0,
                 to_gpa: Callable[[int], int | None] | None = None,
                 entropy_every: int = 0, limit: int = MAX_OFFSETS) -> None:
        self.needles = check_needles(needles)
        self.longest = max(len(n) for n in self.needles)
        self.to_gpa = to_gpa
        self.limit = limit
        self.counts = dict.fromkeys(self.needles, 0)
        self.offs: dict[bytes, list[int]] = {n: [] for n in self.needles}
        self.carry = b""
        self.pos = base_offset        # stream offset of the first byte after carry
        self.base = base_offset
        self.entropy = EntropyStats() if entropy_every else None
        self.entropy_every = entropy_every   # sample one page in this many
        self._page_no = 0
        self._buf: bytearray | None = None
        self._cbuf: Any = None
        self.t0 = time.perf_counter()

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        if not chunk:
            return
        data = self.carry + bytes(chunk)
        self._scan(_haystack(data), data, len(self.carry), len(data), chunk)

    def feed_from(self, read_into: Callable[[memoryview], int], max_bytes: int) -> int:
        """Read up to ``max_bytes`` with ``read_into(view) -> n`` straight into the scanner's own
        buffer (behind the carry) and scan them: no per-chunk copies. Returns n (0 at the end)."""
        keep = len(self.carry)
        need = self.longest - 1 + max_bytes
        if self._buf is None or len(self._buf) < need:
            self._buf = bytearray(need)
            self._cbuf = (ctypes.c_char * need).from_buffer(self._buf) if _MEMMEM is not None else None
        buf = self._buf
        buf[:keep] = self.carry
        view = memoryview(buf)
        try:
            n = read_into(view[keep:keep + max_bytes])
        finally:
            view.release()
        if n <= 0:
            return n
        hay: Any = _CBuf(ctypes.addressof(self._cbuf), self._cbuf) if self._cbuf is not None else bytes(buf)
        with memoryview(buf) as mv:
            self._scan(hay, buf, keep, keep + n, mv[keep:keep + n])
        return n

    def _scan(self, hay: Any, data: bytes | bytearray, carry_len: int, size: int,
              chunk: bytes | bytearray | memoryview) -> None:
        """Hits in data[:size] not already reported; windows of CHUNK bytes so that every needle is
        searched while the window is in cache."""
        start_off = self.pos - carry_len   # stream offset of data[0]
        pos = 0
        while pos < size:
            stop = min(pos + CHUNK, size)
            end = min(stop + self.longest - 1, size)
            for nd in self.needles:
                # skip hits that lay wholly in the carry: the previous feed already counted them
                first = max(pos, carry_len - len(nd) + 1)
                if first >= stop:
                    continue
                tmp: list[int] = []
                self.counts[nd] += _find_all(hay, nd, first, end, stop, tmp, self.limit - len(self.offs[nd]))
                self.offs[nd].extend(start_off + p for p in tmp)
            pos = stop
        if self.entropy is not None:
            self._entropy(chunk)
        self.pos += size - carry_len
        keep = self.longest - 1
        self.carry = bytes(data[max(0, size - keep):size]) if keep else b""

    def _entropy(self, chunk: bytes | bytearray | memoryview) -> None:
        assert self.entropy is not None
        mv = memoryview(chunk)
        for p in range(len(mv) // PAGE):
            self.entropy.pages_total += 1
            if self._page_no % self.entropy_every == 0:
                self.entropy.add(mv[p * PAGE:(p + 1) * PAGE])
            self._page_no += 1

    def result(self) -> ScanResult:
        return ScanResult(self.needles, _hits(self.needles, self.offs, self.to_gpa), dict(self.counts),
                          self.pos - self.base, time.perf_counter() - self.t0, entropy=self.entropy)


def scan_stream(stream: BinaryIO, needles: Iterable[bytes], *, chunk_size: int = STREAM_CHUNK,
                **kw: Any) -> ScanResult:
    """Scan a readable binary stream to its end."""
    sc = StreamScanner(needles, **kw)
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        sc.feed(chunk)
    return sc.result()


# --- ELF dumps (QEMU dump-guest-memory, paging=false; ELF32 or ELF64) ---------------------------------

PT_LOAD = 1
PN_XNUM = 0xFFFF


def elf_segments(head: bytes | mmap.mmap, file_size: int) -> list[Segment] | None:
    """PT_LOAD segments of an ELF32 or ELF64 little-endian file, or None when it is not an ELF.

    QEMU picks the class per dump (target/i386/arch_dump.c cpu_get_dump_info()): ELFCLASS64 when the
    first vCPU is in long mode (HF_LMA) or a RAM block ends above 4 GiB, else ELFCLASS32. An SEV-ES/SNP
    guest's vCPU state is encrypted, so QEMU sees no long mode and a small guest's dump is ELF32.
    Raises InputError for an ELF whose headers are truncated or inconsistent.
    """
    if len(head) < 52 or head[:4] != b"\x7fELF":
        return None
    if head[5] != 1 or head[4] not in (1, 2):
        raise InputError("scan: only little-endian ELF32/ELF64 dumps are supported")
    if head[4] == 2:   # Elf64_Ehdr / Elf64_Phdr (56 bytes) / Elf64_Shdr.sh_info at 0x2c
        if len(head) < 64:
            raise InputError("scan: ELF64 header truncated")
        e_phoff, e_shoff = struct.unpack_from("<QQ", head, 0x20)
        e_phentsize, e_phnum = struct.unpack_from("<HH", head, 0x36)
        phdr, shentsize, sh_info_at, entsize = "<IIQQQQ", 64, 0x2C, 56
    else:              # Elf32_Ehdr / Elf32_Phdr (32 bytes) / Elf32_Shdr.sh_info at 0x1c
        e_phoff, e_shoff = struct.unpack_from("<II", head, 0x1C)
        e_phentsize, e_phnum = struct.unpack_from("<HH", head, 0x2A)
        phdr, shentsize, sh_info_at, entsize = "<IIIIII", 40, 0x1C, 32
    if e_phnum == PN_XNUM:   # the real count is in section header 0's sh_info (QEMU uses this)
        if e_shoff + shentsize > min(file_size, len(head)):
            raise InputError("scan: ELF dump truncated (section header 0 missing)")
        (e_phnum,) = struct.unpack_from("<I", head, e_shoff + sh_info_at)
    if e_phentsize != entsize or e_phoff + e_phnum * entsize > min(file_size, len(head)):
        raise InputError(f"scan: ELF dump truncated or malformed (e_phoff={e_phoff}, e_phnum={e_phnum})")
    segs: list[Segment] = []
    for i in range(e_phnum):
        if entsize == 56:
            p_type, _flags, p_offset, _vaddr, p_paddr, p_filesz = struct.unpack_from(phdr, head, e_phoff + i * 56)
        else:
            p_type, p_offset, _vaddr, p_paddr, p_filesz, _memsz = struct.unpack_from(phdr, head, e_phoff + i * 32)
        if p_type == PT_LOAD and p_filesz:
            segs.append(Segment(p_offset, p_paddr, p_filesz))
    return segs


def gpa_mapper(segments: Sequence[Segment]) -> Callable[[int], int | None]:
    """File offset -> guest-physical address (None outside every segment)."""
    ordered = sorted(segments, key=lambda s: s.offset)

    def to_gpa(off: int) -> int | None:
        for s in ordered:
            if s.contains(off):
                return s.gpa + (off - s.offset)
        return None
    return to_gpa


def _open_for_scan(path: Path) -> tuple[int, Any]:
    """``userfiles`` rules (a regular file: a FIFO or device is refused without blocking); no
    size cap, because the dump is mapped, never read whole."""
    fh = open_regular(path, "scan:")
    size = os.fstat(fh.fileno()).st_size
    if size == 0:
        fh.close()
        raise InputError(f"scan: {shown(path)}: file is empty")
    return size, fh


def scan_file(path: str | os.PathLike[str], needles: Iterable[bytes], *, workers: int | None = None,
              entropy_samples: int = ENTROPY_SAMPLES, elf: bool = True,
              limit: int = MAX_OFFSETS) -> ScanResult:
    """Scan a file through mmap, in ``workers`` forked processes (default: up to 2 cores).

    An ELF file gets its hits mapped to guest-physical addresses and its entropy sampled
    over its PT_LOAD segments only; any other file is scanned as raw bytes.
    """
    p = Path(path)
    nds = check_needles(needles)
    size, fh = _open_for_scan(p)
    t0 = time.perf_counter()
    notes: list[str] = []
    segs_eff: list[Segment] = []
    try:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:      # sysfs/procfs files cannot be mapped (ENODEV)
        fh.close()
        raise InputError(f"scan: {shown(p)}: cannot map: {getattr(exc, 'strerror', None) or exc}") from None
    with fh, mapped as mm:
        try:
            segs = elf_segments(mm, size) if elf else None
        except InputError as exc:             # name the file in the one line
            raise InputError(f"scan: {shown(p)}: {exc.message.removeprefix('scan: ')}") from None
        if segs is not None:
            present = [s for s in segs if s.offset < size]
            for s in segs:
                if s.offset + s.size > size:
                    notes.append(f"ELF truncated: segment gpa {s.gpa:#x} has {max(0, size - s.offset)} of "
                                 f"{s.size} bytes in the file")
            segs_eff = [Segment(s.offset, s.gpa, min(s.size, size - s.offset)) for s in present]
        nw = workers or default_workers()
        nw = max(1, min(nw, size // (64 << 20) or 1))    # small files: forking costs more than it saves
        if nw == 1:
            counts, offs = _worker(str(p), nds, 0, size, size, limit)
        else:
            bounds = [size * i // nw for i in range(nw + 1)]
            parts = _forked([(str(p), nds, bounds[i], bounds[i + 1], size, limit) for i in range(nw)])
            counts, offs = _merge(nds, parts, limit)
        ent: EntropyStats | None = None
        if entropy_samples:
            if segs is not None:
                total = sum(s.size for s in segs_eff) or 1
                ent = EntropyStats()
                for s in segs_eff:
                    _sample_entropy(mm, s.size, max(1, entropy_samples * s.size // total), s.offset, ent)
            else:
                ent = _sample_entropy(mm, size, entropy_samples)
    to_gpa = gpa_mapper(segs_eff) if segs is not None else None
    res = ScanResult(nds, _hits(nds, offs, to_gpa), counts, size, time.perf_counter() - t0, nw,
                     entropy=ent, segments=segs_eff if segs is not None else None, notes=notes)
    return res


def parse_hex_needle(text: str) -> bytes:
    """A needle given as hex on the command line (spaces, ``0x`` and ``:`` allowed)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(" ", "").replace(":", "")
    if not cleaned:
        raise InputError("scan: empty needle")
    try:
        value = bytes.fromhex(cleaned)
    except ValueError:
        raise InputError(f"scan: needle {text!r} is not hexadecimal (want e.g. deadbeef)") from None
    return value
