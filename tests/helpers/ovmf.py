"""A SYNTHETIC, minimal OVMF-like file (not firmware, nothing boots it): a footer GUID table with
the SEV-ES reset block, the SEV hash table and SEV metadata, laid out as in OvmfPkg/ResetVector
(offsets from the end of the file), optionally with OVMF-shaped firmware volumes listing FFS files."""

from __future__ import annotations

import lzma
import struct
import uuid
from pathlib import Path

from sevkit.host.collector import LZMA_SECTION_GUID
from sevkit.host.ovmf import (
    AMDSEV_ONLY_FILES,
    FFS2_FV,
    FOOTER,
    KERNEL_LOADER,
    SEV_ES_RESET_BLOCK,
    SEV_HASH_TABLE,
    SEV_METADATA,
)

HASH_TABLE_GPA = 0x80CC00


def _section(stype: int, body: bytes) -> bytes:
    return (4 + len(body)).to_bytes(3, "little") + bytes([stype]) + body


def _ffs(name: str, ftype: int, sections: bytes) -> bytes:
    hdr = uuid.UUID(name).bytes_le + b"\0\0" + bytes([ftype, 0]) + (24 + len(sections)).to_bytes(3, "little") + b"\xf8"
    out = hdr + sections
    return out + b"\xff" * (-len(out) % 8)


def _fv(files: bytes) -> bytes:
    """EFI_FIRMWARE_VOLUME_HEADER (FFS2 file system, one block-map entry + terminator) + files."""
    hlen = 56 + 16
    length = hlen + len(files)
    hdr = (bytes(16) + uuid.UUID(FFS2_FV).bytes_le + struct.pack("<Q", length) + b"_FVH"
           + struct.pack("<IHHHBB", 0x0004FEFF, hlen, 0, 0, 0, 2) + struct.pack("<II", 1, length) + bytes(8))
    return hdr + files


def craft_volumes(names: list[str]) -> bytes:
    """SYNTHETIC firmware volumes shaped like OVMF's: a FVMAIN_COMPACT whose FV_IMAGE file holds an
    LZMA GUID-defined section (MdeModulePkg gLzmaCustomDecompressGuid) around a DXEFV holding one
    driver file per name (PI spec vol. 3 headers)."""
    inner = _fv(b"".join(_ffs(n, 0x07, _section(0x19, b"SYNTHETIC driver")) for n in names))
    packed = lzma.compress(_section(0x17, inner), format=lzma.FORMAT_ALONE)
    guided = _section(0x02, uuid.UUID(LZMA_SECTION_GUID).bytes_le + struct.pack("<HH", 24, 1) + packed)
    return _fv(_ffs("9e21fd93-9c72-4c15-8c4b-e77f1db2d792", 0x0B, guided))


def craft_ovmf(path: Path, *, snp_kernel_hashes: bool = True, hash_gpa: int = HASH_TABLE_GPA,
               size: int = 64 << 10, files: list[str] | None = None) -> Path:
    """SYNTHETIC OVMF-like file of ``size`` bytes (a page multiple) with an SNP GUID table, and
    ``files`` (FFS file GUIDs) in OVMF-shaped volumes at its start (default: none)."""
    sections = [(0x800000, 0x9000, 1), (0x80D000, 0x1000, 2), (0x80E000, 0x1000, 3)]   # SEC_MEM, SECRETS, CPUID
    if snp_kernel_hashes:
        sections.append((hash_gpa & ~0xFFF, 0x1000, 0x10))   # the page holding the hash table
    meta = b"ASEV" + struct.pack("<III", 16 + 12 * len(sections), 1, len(sections)) + b"".join(
        struct.pack("<III", *s) for s in sections)

    def entry(guid: str, data: bytes) -> bytes:
        return data + struct.pack("<H", 18 + len(data)) + uuid.UUID(guid).bytes_le

    def tail(meta_off: int) -> bytes:
        body = (entry(SEV_ES_RESET_BLOCK, struct.pack("<I", 0x80B004))
                + entry(SEV_HASH_TABLE, struct.pack("<II", hash_gpa, 0x400 if hash_gpa else 0))
                + entry(SEV_METADATA, struct.pack("<I", meta_off)))
        return meta + body + struct.pack("<H", 18 + len(body)) + uuid.UUID(FOOTER).bytes_le + bytes(32)

    end = tail(0)
    end = tail(len(end))                      # metadata offset counts back from the end of the file
    head = craft_volumes(files) if files is not None else b""
    path.write_bytes(head + b"\xff" * (size - len(end) - len(head)) + end)
    return path


AMDSEV_X64 = [*AMDSEV_ONLY_FILES, KERNEL_LOADER]      # what AmdSevX64.fdf puts in its volumes (the markers)
