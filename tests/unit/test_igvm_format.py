"""sevkit.igvm.format: the IGVM layout held to microsoft/igvm igvm_defs (offsets written out by hand here, not
taken from the module), write -> read round trips, and every malformed file named by offset and problem.

Inputs are SYNTHETIC (built in the test) except the round trip of the file built from Debian's OVMF_CODE.fd.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from sevkit.errors import IgvmFormatError, InputError
from sevkit.igvm.build import BuildInputs, build_ovmf_igvm
from sevkit.igvm.format import (
    FLAG_UNMEASURED,
    GuestPolicy,
    IgvmFile,
    PageData,
    PageDataType,
    PlatformType,
    RequiredMemory,
    SupportedPlatform,
    VpContext,
    parse,
    serialize,
)

OVMF = Path("/usr/share/OVMF/OVMF_CODE.fd")     # Debian ovmf 2022.11: the 1.9 MB image with SNP metadata
PAGE = b"SYNTHETIC page" + bytes(4096 - 14)
VMSA = bytes(range(256)) * 16                   # SYNTHETIC: any 4 KiB


def _hand_made() -> bytes:
    """A SYNTHETIC IGVM v1 file laid out by hand from igvm_defs: fixed header (6 x u32), SUPPORTED_PLATFORM
    (type 0x1, 16 bytes), PAGE_DATA (0x302, 24 bytes), VP_CONTEXT (0x304, 20 bytes + 4 padding), file data."""
    var = struct.pack("<II", 0x1, 16) + struct.pack("<IBBHQ", 1, 0, 2, 1, 0)
    var_size = len(var) + 8 + 24 + 8 + 24
    data_start = 24 + var_size
    var += struct.pack("<II", 0x302, 24) + struct.pack("<QIIIHH", 0x1000, 1, data_start, 0, 0, 0)
    var += struct.pack("<II", 0x304, 20) + struct.pack("<QIIHH", 0xFFFFFFFFF000, 1, data_start + 4096, 3, 0) + bytes(4)
    total = data_start + 2 * 4096
    crc = zlib.crc32(struct.pack("<6I", 0x4D564749, 1, 24, var_size, total, 0) + var)
    return struct.pack("<6I", 0x4D564749, 1, 24, var_size, total, crc) + var + PAGE + VMSA


HAND = IgvmFile(platforms=(SupportedPlatform(1, PlatformType.SEV_SNP),),
                directives=(PageData(0x1000, 1, data=PAGE), VpContext(0xFFFFFFFFF000, 1, 3, VMSA)))


def test_hand_made_file_reads_as_its_layout_says() -> None:
    assert _hand_made()[:4] == b"IGVM"
    assert parse(_hand_made()) == HAND


def test_writer_produces_the_hand_made_bytes() -> None:
    assert serialize(HAND) == _hand_made()


def test_round_trip_of_every_header_kind() -> None:
    """SYNTHETIC file with each header sevkit writes; identical page data is stored once (FileDataSerializer)."""
    f = IgvmFile(platforms=(SupportedPlatform(2, PlatformType.SEV_SNP), SupportedPlatform(1, PlatformType.NATIVE)),
                 initializations=(GuestPolicy(0x30000, 2),),
                 directives=(PageData(0x0, 2, data=PAGE), PageData(0x1000, 2, data=PAGE),
                             PageData(0x2000, 2, flags=FLAG_UNMEASURED), PageData(0x3000, 2, PageDataType.SECRETS),
                             PageData(0x4000, 2, PageDataType.CPUID_DATA), PageData(0x5000, 2, PageDataType.CPUID_XF),
                             PageData(0x6000, 1, data=b"short"), RequiredMemory(0x100000, 2, 0x200000),
                             VpContext(0xFFFFFFFFF000, 2, 0, VMSA)))
    b = serialize(f)
    back = parse(b)
    assert back.directives[6] == PageData(0x6000, 1, data=b"short" + bytes(4091))   # zero-padded to the page
    assert back.directives[:6] + back.directives[7:] == f.directives[:6] + f.directives[7:]
    assert back.platforms == f.platforms and back.initializations == f.initializations
    assert serialize(back) == b
    assert len(b) == 24 + 2 * 24 + 24 + 7 * 32 + 32 + 32 + 3 * 4096    # PAGE once, b"short" page, VMSA


def test_round_trip_of_the_file_built_from_debian_ovmf(tmp_path: Path) -> None:
    f = build_ovmf_igvm(BuildInputs(OVMF, vcpus=2))
    b = serialize(f)
    assert parse(b, "built") == f
    assert serialize(parse(b)) == b


def _fix_crc(b: bytearray) -> bytes:
    var_off, var_size = struct.unpack_from("<II", b, 8)
    b[20:24] = bytes(4)
    b[20:24] = struct.pack("<I", zlib.crc32(bytes(b[:24]) + bytes(b[var_off:var_off + var_size])))
    return bytes(b)


def _mutated(offset: int, value: bytes, *, crc: bool = True) -> bytes:
    b = bytearray(_hand_made())
    b[offset:offset + len(value)] = value
    return _fix_crc(b) if crc else bytes(b)


MALFORMED = {
    "bad magic": (b"IGVX" + _hand_made()[4:], 0x0, "bad magic 0x58564749"),
    "truncated fixed header": (_hand_made()[:10], 0xA, "truncated: the fixed header needs 24 bytes"),
    "truncated file": (_hand_made()[:-1], 0x10, "total_file_size says 8304 bytes but the file has 8303"),
    "version": (_mutated(4, struct.pack("<I", 2)), 0x4, "format version 2 is not one sevkit reads"),
    "checksum": (_mutated(24 + 8 + 4, b"\x05", crc=False), 0x14, "does not match the CRC32"),
    "unknown mandatory header": (_mutated(24 + 24, struct.pack("<I", 0x309)), 0x30,
                                 "header type 0x309 is not one sevkit reads and its optional bit (31) is clear"),
    "header past the end": (_mutated(24 + 24 + 4, struct.pack("<I", 4000)), 0x30, "runs past the variable headers"),
    "platform after directive": (_mutated(24 + 56, struct.pack("<I", 0x1)), 0x50,
                                 "platform header type 0x1 after the directive section"),
    "page data outside the file": (_mutated(24 + 24 + 8 + 12, struct.pack("<I", 0x10000)), 0x30,
                                   "file_offset 0x10000 + 4 KiB lies outside the file data"),
    "padding not zero": (_mutated(24 + 56 + 8 + 20, b"\x01"), 0x6C, "padding after header type 0x304 is not zero"),
    "page reserved bits": (_mutated(24 + 24 + 8 + 16, struct.pack("<I", 0x100)), 0x30, "PAGE_DATA reserved bits"),
    "wrong header length": (_mutated(24 + 24 + 4, struct.pack("<I", 16)), 0x30,
                            "PAGE_DATA header has length 16, the structure has 24"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_file_names_offset_and_problem(name: str) -> None:
    data, offset, problem = MALFORMED[name]
    with pytest.raises(IgvmFormatError) as exc:
        parse(data, "x.igvm")
    assert isinstance(exc.value, InputError)            # CLI: one line, exit 2
    assert exc.value.offset == offset, str(exc.value)
    assert problem in str(exc.value) and str(exc.value).startswith(f"x.igvm: not a valid IGVM file: at offset "
                                                                   f"{offset:#x}: ")


def test_optional_unknown_header_is_skipped() -> None:
    """The optional bit (31) lets a loader ignore a header it does not know (igvm_defs: IGVM_VHT_OPTIONAL_BIT)."""
    data = _mutated(24 + 24, struct.pack("<I", 0x8000_0309))
    f = parse(data)
    assert f.skipped == ((0x30, 0x8000_0309),) and f.directives == HAND.directives[1:]
