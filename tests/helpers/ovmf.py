"""A SYNTHETIC, minimal OVMF-like file (not firmware, nothing boots it): a footer GUID table with
the SEV-ES reset block, the SEV hash table and SEV metadata, laid out as in OvmfPkg/ResetVector
(offsets from the end of the file)."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

from sevkit.host.ovmf import FOOTER, SEV_ES_RESET_BLOCK, SEV_HASH_TABLE, SEV_METADATA

HASH_TABLE_GPA = 0x80CC00


def craft_ovmf(path: Path, *, snp_kernel_hashes: bool = True, hash_gpa: int = HASH_TABLE_GPA,
               size: int = 64 << 10) -> Path:
    """SYNTHETIC OVMF-like file of ``size`` bytes (a page multiple) with an SNP GUID table."""
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
    path.write_bytes(b"\xff" * (size - len(end)) + end)
    return path
