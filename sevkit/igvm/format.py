"""The IGVM file format, the subset an SEV-SNP launch of OVMF under QEMU needs: read and write.

Every constant and layout is microsoft/igvm ``igvm_defs/src/lib.rs`` (IGVM_FIXED_HEADER,
IGVM_VHS_VARIABLE_HEADER, IgvmVariableHeaderType, IGVM_VHS_SUPPORTED_PLATFORM, IGVM_VHS_GUEST_POLICY,
IGVM_VHS_PAGE_DATA, IgvmPageDataFlags, IgvmPageDataType, IGVM_VHS_VP_CONTEXT, IGVM_VHS_REQUIRED_MEMORY);
the serialization rules are its ``igvm/src/lib.rs`` (IgvmFile::serialize / new_from_binary,
append_header, FileDataSerializer). All little endian. Layout of a file:

    fixed header (24 bytes) | variable headers (TLVs, each 8-byte aligned) | file data (pages)

Headers sevkit does not know make the file unreadable unless their type has the optional bit (31)
set, as the format requires of a loader ("if it is clear and the loader does not support the type,
then the file cannot be loaded"). QEMU's loader (backends/igvm.c, QEMU >= 10.1) handles a fixed set
of types and fails on any other, so sevkit writes only the types here.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

from ..errors import IgvmFormatError

MAGIC = 0x4D564749                 # IGVM_MAGIC_VALUE: b"IGVM" read little endian
FORMAT_VERSION_1 = 1               # IGVM_FORMAT_VERSION_1 (version 2 is "work in progress", unstable feature)
PAGE_SIZE_4K = 4096                # PAGE_SIZE_4K
OPTIONAL_BIT = 1 << 31             # IGVM_VHT_OPTIONAL_BIT: a loader may ignore a header it does not know
SEV_SNP_PLATFORM_VERSION = 1       # IGVM_SEV_SNP_PLATFORM_VERSION

FIXED = struct.Struct("<6I")       # IGVM_FIXED_HEADER: magic, format_version, variable_header_offset,
                                   # variable_header_size, total_file_size, checksum
VARIABLE = struct.Struct("<2I")    # IGVM_VHS_VARIABLE_HEADER: typ, length (of the body, before 8-alignment)
SUPPORTED_PLATFORM = struct.Struct("<IBBHQ")   # compatibility_mask, highest_vtl, platform_type, version,
                                               # shared_gpa_boundary
GUEST_POLICY = struct.Struct("<QII")           # policy, compatibility_mask, reserved
PAGE_DATA = struct.Struct("<QIIIHH")           # gpa, compatibility_mask, file_offset, flags, data_type, reserved
VP_CONTEXT = struct.Struct("<QIIHH")           # gpa, compatibility_mask, file_offset, vp_index, reserved
                                               # ("not aligned to 8 bytes": length 20, padded to 24)
REQUIRED_MEMORY = struct.Struct("<QIIII")      # gpa, compatibility_mask, number_of_bytes, flags, reserved


class HeaderType(IntEnum):
    """IgvmVariableHeaderType values sevkit reads and writes."""

    SUPPORTED_PLATFORM = 0x1       # IGVM_VHT_SUPPORTED_PLATFORM (platform section)
    GUEST_POLICY = 0x101           # IGVM_VHT_GUEST_POLICY (initialization section)
    PAGE_DATA = 0x302              # IGVM_VHT_PAGE_DATA (directive section)
    VP_CONTEXT = 0x304             # IGVM_VHT_VP_CONTEXT
    REQUIRED_MEMORY = 0x305        # IGVM_VHT_REQUIRED_MEMORY


# IGVM_VHT_RANGE_PLATFORM / _INIT / _DIRECTIVE; a file must not go back to an earlier section.
SECTIONS: tuple[tuple[str, range], ...] = (("platform", range(0x1, 0x101)), ("initialization", range(0x101, 0x201)),
                                           ("directive", range(0x301, 0x401)))


class PlatformType(IntEnum):
    """IgvmPlatformType (repr u8)."""

    NATIVE = 0x00
    VSM_ISOLATION = 0x01
    SEV_SNP = 0x02
    TDX = 0x03


class PageDataType(IntEnum):
    """IgvmPageDataType (repr u16)."""

    NORMAL = 0x0
    SECRETS = 0x1
    CPUID_DATA = 0x2
    CPUID_XF = 0x3


# IgvmPageDataFlags (bitfield u32): bit 0 is_2mb_page, bit 1 unmeasured, bit 2 shared, 3..31 reserved.
FLAG_2MB, FLAG_UNMEASURED, FLAG_SHARED = 1 << 0, 1 << 1, 1 << 2
FLAGS_KNOWN = FLAG_2MB | FLAG_UNMEASURED | FLAG_SHARED


@dataclass(frozen=True, slots=True)
class SupportedPlatform:
    compatibility_mask: int
    platform_type: int
    platform_version: int = SEV_SNP_PLATFORM_VERSION
    highest_vtl: int = 0
    shared_gpa_boundary: int = 0


@dataclass(frozen=True, slots=True)
class GuestPolicy:
    """For SEV-SNP the policy is the SNP guest policy (SnpPolicy; SNP ABI "Guest Policy")."""

    policy: int
    compatibility_mask: int


@dataclass(frozen=True, slots=True)
class PageData:
    """One 4 KiB page. ``data`` empty means file_offset 0: "a page of zeroes is to be loaded ... as a normal
    private page with zeros as contents" (IGVM_VHS_PAGE_DATA.file_offset); shorter data is zero-padded."""

    gpa: int
    compatibility_mask: int
    data_type: int = PageDataType.NORMAL
    flags: int = 0
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class VpContext:
    """An initial vCPU state; for SEV-SNP the file data is the 4 KiB VMSA page (SevVmsa)."""

    gpa: int
    compatibility_mask: int
    vp_index: int
    vmsa: bytes


@dataclass(frozen=True, slots=True)
class RequiredMemory:
    gpa: int
    compatibility_mask: int
    number_of_bytes: int
    flags: int = 0


Directive = PageData | VpContext | RequiredMemory


@dataclass(frozen=True, slots=True)
class IgvmFile:
    platforms: tuple[SupportedPlatform, ...]
    initializations: tuple[GuestPolicy, ...] = ()
    directives: tuple[Directive, ...] = ()
    skipped: tuple[tuple[int, int], ...] = field(default=(), compare=False)   # (offset, type) optional ones read past

    def platform_mask(self, platform: int) -> int | None:
        """The compatibility mask of ``platform``'s supported-platform header, if the file has one."""
        return next((p.compatibility_mask for p in self.platforms if p.platform_type == platform), None)

    @property
    def vp_count(self) -> int:
        """How many vCPUs the file carries a VP context for (the vCPU count it was built for)."""
        return len({d.vp_index for d in self.directives if isinstance(d, VpContext)})


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _tlv(typ: int, body: bytes) -> bytes:
    """append_header: type, length of the body, body, zero padding to 8 bytes."""
    return VARIABLE.pack(typ, len(body)) + body + bytes(_align8(len(body)) - len(body))


def _page(data: bytes, what: str) -> bytes:
    if len(data) > PAGE_SIZE_4K:
        raise ValueError(f"{what}: {len(data)} bytes do not fit one 4 KiB page")
    return data + bytes(PAGE_SIZE_4K - len(data))


def _header_size(st: struct.Struct) -> int:
    return VARIABLE.size + _align8(st.size)


def serialize(f: IgvmFile) -> bytes:
    """The file's bytes: format version 1, variable headers at offset 24, identical file data stored once
    (FileDataSerializer deduplicates), CRC32 over fixed + variable headers with the checksum field zero
    (crc32fast, the IEEE CRC-32 that zlib.crc32 computes)."""
    for p in f.platforms:
        if p.compatibility_mask.bit_count() != 1:
            raise ValueError(f"platform compatibility mask {p.compatibility_mask:#x} must have exactly one bit set")
    sizes = {PageData: PAGE_DATA, VpContext: VP_CONTEXT, RequiredMemory: REQUIRED_MEMORY}
    var_size = (len(f.platforms) * _header_size(SUPPORTED_PLATFORM)
                + len(f.initializations) * _header_size(GUEST_POLICY)
                + sum(_header_size(sizes[type(d)]) for d in f.directives))
    data_start = FIXED.size + var_size
    data = bytearray()
    seen: dict[bytes, int] = {}

    def store(page: bytes) -> int:
        if page not in seen:
            seen[page] = data_start + len(data)
            data.extend(page)
        return seen[page]

    headers = bytearray()
    for p in f.platforms:
        headers += _tlv(HeaderType.SUPPORTED_PLATFORM, SUPPORTED_PLATFORM.pack(
            p.compatibility_mask, p.highest_vtl, p.platform_type, p.platform_version, p.shared_gpa_boundary))
    for g in f.initializations:
        headers += _tlv(HeaderType.GUEST_POLICY, GUEST_POLICY.pack(g.policy, g.compatibility_mask, 0))
    for d in f.directives:
        if d.gpa % PAGE_SIZE_4K:
            raise ValueError(f"directive GPA {d.gpa:#x} is not 4 KiB aligned")
        if isinstance(d, PageData):
            if d.flags & FLAG_2MB:
                raise ValueError("2 MiB page data is not written by sevkit")
            offset = store(_page(d.data, f"page {d.gpa:#x}")) if d.data else 0
            headers += _tlv(HeaderType.PAGE_DATA,
                            PAGE_DATA.pack(d.gpa, d.compatibility_mask, offset, d.flags, d.data_type, 0))
        elif isinstance(d, VpContext):
            if len(d.vmsa) != PAGE_SIZE_4K:
                raise ValueError(f"VMSA for vp {d.vp_index} is {len(d.vmsa)} bytes, not one 4 KiB page")
            headers += _tlv(HeaderType.VP_CONTEXT,
                            VP_CONTEXT.pack(d.gpa, d.compatibility_mask, store(d.vmsa), d.vp_index, 0))
        else:
            headers += _tlv(HeaderType.REQUIRED_MEMORY, REQUIRED_MEMORY.pack(
                d.gpa, d.compatibility_mask, d.number_of_bytes, d.flags, 0))
    assert len(headers) == var_size
    total = data_start + len(data)
    if total >= 1 << 32:
        raise ValueError(f"an IGVM file holds at most 4 GiB (total_file_size is u32); this one would be {total}")
    fixed = FIXED.pack(MAGIC, FORMAT_VERSION_1, FIXED.size, var_size, total, 0)
    crc = zlib.crc32(fixed + headers)
    return FIXED.pack(MAGIC, FORMAT_VERSION_1, FIXED.size, var_size, total, crc) + bytes(headers) + bytes(data)


class _Reader:
    def __init__(self, buf: bytes, source: str) -> None:
        self.buf, self.source = buf, source
        self.data_start = 0

    def fail(self, offset: int, what: str) -> IgvmFormatError:
        return IgvmFormatError(f"{self.source}: not a valid IGVM file: at offset {offset:#x}: {what}",
                               evidence={"file": self.source, "offset": offset, "problem": what}, offset=offset)

    def file_page(self, at: int, file_offset: int, what: str) -> bytes:
        """The 4 KiB of file data at ``file_offset`` (read by the header at ``at``); 0 means none."""
        if file_offset == 0:
            return b""
        if file_offset < self.data_start or file_offset + PAGE_SIZE_4K > len(self.buf):
            raise self.fail(at, f"{what}: file_offset {file_offset:#x} + 4 KiB lies outside the file data "
                            f"[{self.data_start:#x}, {len(self.buf):#x})")
        return self.buf[file_offset:file_offset + PAGE_SIZE_4K]


def parse(buf: bytes, source: str = "IGVM file") -> IgvmFile:
    """Read an IGVM file. Raises IgvmFormatError naming the offset and the problem."""
    r = _Reader(buf, source)
    if len(buf) < FIXED.size:
        raise r.fail(len(buf), f"truncated: the fixed header needs {FIXED.size} bytes, the file has {len(buf)}")
    magic, version, var_off, var_size, total, checksum = FIXED.unpack_from(buf)
    if magic != MAGIC:
        raise r.fail(0, f"bad magic {magic:#010x} (an IGVM file starts with 'IGVM', {MAGIC:#010x})")
    if version != FORMAT_VERSION_1:
        raise r.fail(4, f"format version {version} is not one sevkit reads (version {FORMAT_VERSION_1})")
    if total != len(buf):
        raise r.fail(16, f"total_file_size says {total} bytes but the file has {len(buf)} (truncated or padded)")
    if var_off < FIXED.size or var_off % 8:
        raise r.fail(8, f"variable_header_offset {var_off:#x} must be >= {FIXED.size} and 8-byte aligned")
    end = var_off + var_size
    if end > len(buf):
        raise r.fail(12, f"variable headers [{var_off:#x}, {end:#x}) run past the end of the file ({len(buf):#x})")
    want = zlib.crc32(FIXED.pack(magic, version, var_off, var_size, total, 0) + buf[var_off:end])
    if checksum != want:
        raise r.fail(20, f"checksum {checksum:#010x} does not match the CRC32 {want:#010x} of the headers")
    r.data_start = end
    platforms: list[SupportedPlatform] = []
    inits: list[GuestPolicy] = []
    directives: list[Directive] = []
    skipped: list[tuple[int, int]] = []
    section = 0
    at = var_off
    while at < end:
        if at + VARIABLE.size > end:
            raise r.fail(at, f"truncated variable header: {end - at} bytes left, a header needs {VARIABLE.size}")
        typ, length = VARIABLE.unpack_from(buf, at)
        body_at, nxt = at + VARIABLE.size, at + VARIABLE.size + _align8(length)
        if nxt > end:
            raise r.fail(at, f"header type {typ:#x} of length {length} runs past the variable headers' end {end:#x}")
        if any(buf[body_at + length:nxt]):
            raise r.fail(body_at + length, f"padding after header type {typ:#x} is not zero")
        if typ & OPTIONAL_BIT:
            skipped.append((at, typ))
            at = nxt
            continue
        here = next((i for i, (_, rng) in enumerate(SECTIONS) if typ in rng), None)
        if here is None or typ not in HeaderType.__members__.values():
            raise r.fail(at, f"header type {typ:#x} is not one sevkit reads and its optional bit (31) is clear: "
                         "a loader must refuse the file")
        if here < section:
            raise r.fail(at, f"{SECTIONS[here][0]} header type {typ:#x} after the {SECTIONS[section][0]} section")
        section = here
        body = buf[body_at:body_at + length]
        _read_header(r, at, HeaderType(typ), body, platforms, inits, directives)
        at = nxt
    if not platforms:
        raise r.fail(var_off, "no supported-platform header")
    return IgvmFile(tuple(platforms), tuple(inits), tuple(directives), tuple(skipped))


def _exact(r: _Reader, at: int, typ: HeaderType, body: bytes, st: struct.Struct) -> tuple[int, ...]:
    if len(body) != st.size:
        raise r.fail(at, f"{typ.name} header has length {len(body)}, the structure has {st.size}")
    return st.unpack(body)


def _read_header(r: _Reader, at: int, typ: HeaderType, body: bytes, platforms: list[SupportedPlatform],
                 inits: list[GuestPolicy], directives: list[Directive]) -> None:
    if typ == HeaderType.SUPPORTED_PLATFORM:
        mask, vtl, ptype, pver, boundary = _exact(r, at, typ, body, SUPPORTED_PLATFORM)
        if mask.bit_count() != 1:
            raise r.fail(at, f"supported platform compatibility mask {mask:#x} must have exactly one bit set")
        if any(p.compatibility_mask == mask for p in platforms):
            raise r.fail(at, f"compatibility mask {mask:#x} is declared twice")
        if ptype == PlatformType.SEV_SNP and pver != SEV_SNP_PLATFORM_VERSION:
            raise r.fail(at, f"SEV-SNP platform version {pver} (the format defines {SEV_SNP_PLATFORM_VERSION})")
        platforms.append(SupportedPlatform(mask, ptype, pver, vtl, boundary))
    elif typ == HeaderType.GUEST_POLICY:
        policy, mask, reserved = _exact(r, at, typ, body, GUEST_POLICY)
        if reserved:
            raise r.fail(at, "GUEST_POLICY reserved field is not zero")
        inits.append(GuestPolicy(policy, mask))
    elif typ == HeaderType.PAGE_DATA:
        gpa, mask, foff, flags, dtype, reserved = _exact(r, at, typ, body, PAGE_DATA)
        if reserved or flags & ~FLAGS_KNOWN:
            raise r.fail(at, f"PAGE_DATA reserved bits set (flags {flags:#x}, reserved {reserved:#x})")
        if flags & FLAG_2MB:
            raise r.fail(at, f"PAGE_DATA at GPA {gpa:#x} is a 2 MiB page, which sevkit does not read")
        if gpa % PAGE_SIZE_4K:
            raise r.fail(at, f"PAGE_DATA GPA {gpa:#x} is not 4 KiB aligned")
        if dtype not in PageDataType.__members__.values():
            raise r.fail(at, f"PAGE_DATA type {dtype:#x} is not an IgvmPageDataType")
        directives.append(PageData(gpa, mask, dtype, flags, r.file_page(at, foff, f"PAGE_DATA {gpa:#x}")))
    elif typ == HeaderType.VP_CONTEXT:
        gpa, mask, foff, vp, reserved = _exact(r, at, typ, body, VP_CONTEXT)
        if reserved:
            raise r.fail(at, "VP_CONTEXT reserved field is not zero")
        if not any(p.compatibility_mask == mask and p.platform_type == PlatformType.SEV_SNP for p in platforms):
            raise r.fail(at, f"VP_CONTEXT mask {mask:#x} is not an SEV-SNP platform's: sevkit reads SNP VMSAs only")
        vmsa = r.file_page(at, foff, f"VP_CONTEXT vp {vp}")
        if not vmsa:
            raise r.fail(at, f"VP_CONTEXT vp {vp} has no VMSA (file_offset 0)")
        directives.append(VpContext(gpa, mask, vp, vmsa))
    else:
        gpa, mask, nbytes, flags, reserved = _exact(r, at, typ, body, REQUIRED_MEMORY)
        if reserved or gpa % PAGE_SIZE_4K or nbytes % PAGE_SIZE_4K:
            raise r.fail(at, f"REQUIRED_MEMORY {gpa:#x}+{nbytes:#x}: unaligned or reserved field set")
        directives.append(RequiredMemory(gpa, mask, nbytes, flags))


