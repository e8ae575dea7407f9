"""Builders of RawInputs for grader self-tests.

SYNTHETIC: ``make_raw`` assembles collector-shaped data from explicit values. Tests that use
real captures (tests/data/realdata) pass the capture's own text or registers in, and say which
values come from the capture and which are synthetic filler.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import re
import struct
import uuid
from pathlib import Path
from typing import Any

from sevkit.host import RawInputs
from sevkit.host.collector import SCHEMA

REALDATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "realdata"

GENOA = 0x00A10F11   # family 19h model 11h stepping 1
MILAN = 0x00A00F11   # family 19h model 01h stepping 1
ROME = 0x00830F10    # family 17h model 31h stepping 0
TURIN = 0x00B00F21   # family 1Ah model 02h stepping 1


def realdata(rel: str) -> str:
    path = REALDATA / rel
    if not path.is_file():  # fail loudly: the captures ship in tests/data/realdata
        raise FileNotFoundError(f"real capture missing: {path} (tests/data/realdata)")
    return path.read_text(encoding="utf-8", errors="replace")


def cpuid_from_capture(text: str, leaf: int) -> tuple[int, int, int, int]:
    """Registers from `cpuid -1 -r` output (realdata/cpuid)."""
    m = re.search(rf"0x{leaf:08x} 0x00: eax=(0x[0-9a-f]+) ebx=(0x[0-9a-f]+) ecx=(0x[0-9a-f]+) edx=(0x[0-9a-f]+)",
                  text)
    if not m:
        raise ValueError(f"leaf 0x{leaf:x} not in capture")
    a, b, c, d = (int(x, 16) for x in m.groups())
    return (a, b, c, d)


def _brand_regs(brand: str) -> list[list[int]]:
    raw = brand.encode().ljust(48, b"\0")[:48]
    words = struct.unpack("<12I", raw)
    return [list(words[0:4]), list(words[4:8]), list(words[8:12])]


def _vendor_regs(vendor: str) -> list[int]:
    b, d, c = struct.unpack("<3I", vendor.encode()[:12])
    return [0x10, b, c, d]


def _err(code: int = errno.ENOENT, msg: str = "No such file or directory") -> dict[str, Any]:
    return {"error": f"OSError: [Errno {code}] {msg}", "errno": code, "errname": errno.errorcode[code]}


def sev_status_hex(major: int, minor: int, state: int, flags: int, build: int, guests: int) -> str:
    return struct.pack("<BBBIBI", major, minor, state, flags, build, guests).hex()


def snp_status_hex(major: int, minor: int, state: int, rmp_init: bool, alias: bool, build: int,
                   guests: int, current_tcb: int, reported_tcb: int) -> str:
    flags = int(rmp_init) | int(alias) << 1
    return struct.pack("<BBBBIIIQQ", major, minor, state, flags, build, 0, guests, current_tcb, reported_tcb).hex()


def tcb(bl: int, tee: int, snp: int, ucode: int) -> int:
    """Milan/Genoa TCB_VERSION layout (sev-facts §6.3)."""
    return int.from_bytes(bytes([bl, tee, 0, 0, 0, 0, snp, ucode]), "little")


# OVMF GUID table layout as OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm lays it out (sev-facts §8.5).
_FOOTER = "96b582de-1fb2-45f7-baea-a366c55a082d"
_SEV_ES = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
_HASHES = "7255371f-3a3b-4b04-927b-1da6efa8d454"
_META = "dc886566-984a-4798-a75e-5585a7bf67cc"
_NV_STORE = "fff12b8d-7696-4c8b-a985-2747075b4f50"
_FFS2 = "8c8ce578-8a3d-4f1c-9935-896185c32dd3"


def ovmf_image(path: str, *, sev_es: bool = True, snp: bool = True, hash_gpa: int = 0x80CC00,
               snp_kernel_hashes: bool = True, combined: bool = True, table: bool = True) -> dict[str, Any]:
    """SYNTHETIC: a collector ``ovmf.images`` entry whose tail carries a GUID table with the asked-for
    entries (defaults: an AmdSevX64-like combined image with every capability)."""
    items = [(0x800000, 0x9000, 1), (0x809000, 0x2000, 1), (0x80D000, 0x1000, 2), (0x80E000, 0x1000, 3)] if snp \
        else []
    if snp_kernel_hashes:
        items.append((0x80CC00, 0x400, 0x10))
    meta = b"ASEV" + struct.pack("<III", 16 + 12 * len(items), 1, len(items)) + b"".join(
        struct.pack("<III", *i) for i in items)
    entries = [(_SEV_ES, struct.pack("<I", 0x80B004))] if sev_es else []
    entries.append((_HASHES, struct.pack("<II", hash_gpa, 0x400 if hash_gpa else 0)))
    if snp:
        entries.append((_META, b"\0\0\0\0"))   # offset filled in below
    filler = b"\xff" * 4096

    def build(meta_off: int) -> bytes:
        body = b"".join((struct.pack("<I", meta_off) if g == _META else d) + struct.pack("<H", 18 + len(d))
                        + uuid.UUID(g).bytes_le for g, d in entries)
        foot = struct.pack("<H", 18 + len(body)) + uuid.UUID(_FOOTER).bytes_le if table else b"\0" * 18
        return filler + meta + body + foot + b"\0" * 32
    tail = build(0)
    tail = build(len(tail) - len(filler))
    fs = _NV_STORE if combined or not table else _FFS2
    head = bytes(16) + uuid.UUID(fs).bytes_le + struct.pack("<Q", 0x84000) + b"_FVH" + bytes(20)
    return {"path": path, "realpath": path, "size": 4 << 20, "sha256": hashlib.sha256(head + tail).hexdigest(),
            "head_b64": base64.b64encode(head).decode(), "tail_b64": base64.b64encode(tail).decode(),
            "tail_offset": (4 << 20) - len(tail)}


def _ovmf_section(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Collector layout: images list path/realpath/size; content is keyed by realpath."""
    keys = ("path", "realpath", "size")
    return {"images": [{k: e[k] for k in keys if k in e} for e in entries],
            "content": {e["realpath"]: {k: v for k, v in e.items() if k not in keys} for e in entries
                        if any(k not in keys for k in e)},
            "searched": []}


def make_raw(*, vendor: str = "AuthenticAMD", brand: str = "AMD EPYC 9354 32-Core Processor",
             eax1: int = GENOA, max_ext: int = 0x80000028,
             leaf_1f: tuple[int, int, int, int] | None = (0x0101FD3F, 51 | 6 << 6 | 4 << 12, 1006, 100),
             cpuid_error: dict[str, Any] | None = None,
             syscfg: int | None = (1 << 23) | (1 << 24) | (1 << 25), msr_error: dict[str, Any] | None = None,
             rmp: tuple[int, int] = (0x601D200000, 0x607DAFFFFF), ram_end: int | None = 0x17FFFFFFFF,
             kvm_params: dict[str, str] | None = None, kvm_module: bool = True, kvm: bool = True,
             dev_sev: bool = True, sev_readable: bool | dict[str, Any] = True,
             sev_status: str | dict[str, Any] | None = None, snp_status: str | dict[str, Any] | None = None,
             iommu_units: tuple[str, ...] = ("ivhd0", "ivhd1"), cmdline: str = "BOOT_IMAGE=/vmlinuz ro",
             dmesg: str | None = "", misc_capacity: str | None = None,
             kernel: str = "6.11.0", qemu_version: str | None = "9.2.0",
             qemu_objects: tuple[str, ...] = ("sev-guest", "sev-snp-guest", "memory-backend-memfd"),
             ovmf: tuple[str | dict[str, Any], ...] = ("/usr/share/OVMF/OVMF.amdsev.fd",), euid: int = 0,
             cpuinfo_flags: str = "fpu sme sev sev_es sev_snp", microcode: str = "0xa101148",
             vmsa_features: int | dict[str, Any] | None = None, rmp_cfg: int | None = None,
             leaf_25: tuple[int, int, int, int] | None = None) -> RawInputs:
    """A collector-shaped dict. Defaults: a healthy SNP host (SYNTHETIC values, Genoa-like). ``ovmf``: paths
    (each a synthetic full-capability image, see ovmf_image) or ready collector entries."""
    if kvm_params is None:
        kvm_params = {"sev": "Y\n", "sev_es": "Y\n", "sev_snp": "Y\n"}
    leaves: dict[str, Any] = {
        "0x00000000": _vendor_regs(vendor), "0x00000001": [eax1, 0, 0, 0], "0x80000000": [max_ext, 0, 0, 0],
        "0x80000001": [0, 0, 0, 0], "0x80000008": [0x3030, 0, 0, 0],
    }
    for i, regs in enumerate(_brand_regs(brand)):
        leaves[f"0x{0x80000002 + i:08x}"] = regs
    if leaf_1f is not None:
        leaves["0x8000001f"] = list(leaf_1f)
    if leaf_25 is not None:
        leaves["0x80000025"] = list(leaf_25)
    cpuid: dict[str, Any] = {"source": "/dev/cpu/0/cpuid", "leaves": leaves}
    if cpuid_error:
        cpuid = {"source": "/dev/cpu/0/cpuid", **cpuid_error}
    msr: dict[str, Any] = {"source": "/dev/cpu/0/msr", "values": {
        "0xc0010010": {"name": "SYSCFG", "value": syscfg or 0},
        "0xc0010015": {"name": "HWCR", "value": 1},
        "0xc0010132": {"name": "RMP_BASE", "value": rmp[0]},
        "0xc0010133": {"name": "RMP_END", "value": rmp[1]}}}
    if rmp_cfg is not None:
        msr["values"]["0xc0010136"] = {"name": "RMP_CFG", "value": rmp_cfg}
    if msr_error:
        msr = {"source": "/dev/cpu/0/msr", **msr_error}
    files: dict[str, Any] = {
        "/proc/cmdline": {"text": cmdline + "\n"}, "/proc/meminfo": {"text": "MemTotal: 1 kB\n"},
        "/proc/sys/kernel/osrelease": {"text": kernel + "\n"}, "/proc/sys/kernel/dmesg_restrict": {"text": "1\n"},
        "/sys/fs/cgroup/misc.capacity": {"text": misc_capacity} if misc_capacity is not None else _err(),
    }
    for name in ("sev", "sev_es", "sev_snp", "debug_swap", "ciphertext_hiding_asids"):
        val = kvm_params.get(name)
        files[f"/sys/module/kvm_amd/parameters/{name}"] = {"text": val} if (val is not None and kvm_module) else _err()
    dev_sev_entry: dict[str, Any] = {"exists": dev_sev}
    if dev_sev:
        dev_sev_entry.update({"mode": "0600", "uid": 0, "gid": 0, "writable": True})
        if sev_readable is True:
            dev_sev_entry["readable"] = True
        else:
            dev_sev_entry["readable"] = False
            dev_sev_entry["readable_error"] = sev_readable
    ioctl: dict[str, Any] = {}
    if dev_sev:
        ss = sev_status if sev_status is not None else sev_status_hex(1, 55, 1, 0x100, 38, 0)
        ioctl["SEV_PLATFORM_STATUS"] = {"hex": ss, "fw_error": 0} if isinstance(ss, str) else ss
        sn = snp_status if snp_status is not None else snp_status_hex(
            1, 55, 1, True, True, 38, 0, tcb(9, 0, 22, 72), tcb(9, 0, 22, 72))
        ioctl["SNP_PLATFORM_STATUS"] = {"hex": sn, "fw_error": 0} if isinstance(sn, str) else sn
    qemu: dict[str, Any] = {"error": "no QEMU binary found"}
    if qemu_version is not None:
        qemu = {"path": "/usr/bin/qemu-system-x86_64",
                "version": {"rc": 0, "stdout": f"QEMU emulator version {qemu_version}\nCopyright\n"},
                "object_help": {"rc": 0, "stdout": "List of user creatable objects:\n"
                                + "".join(f"  {o}\n" for o in qemu_objects)}}
    data: dict[str, Any] = {
        "schema": SCHEMA, "collected_at": "2026-01-01T00:00:00+00:00",
        "collector": {"euid": euid, "python": "3.11", "hostname": "synthetic", "seconds": 0.01},
        "uname": {"sysname": "Linux", "release": kernel, "version": "#1", "machine": "x86_64"},
        "cpuid": cpuid, "msr": msr, "modprobe": {},
        "cpuinfo": {"text": f"processor\t: 0\nvendor_id\t: {vendor}\nmicrocode\t: {microcode}\n"
                            f"flags\t\t: {cpuinfo_flags}\n", "processors": 64},
        "iomem": {"system_ram_end": ram_end, "ranges": 3},
        "files": files,
        "dirs": {"/sys/class/iommu": {"entries": list(iommu_units)},
                 "/sys/module/kvm_amd": {"entries": ["parameters"]} if kvm_module else _err(),
                 "/sys/module/kvm_intel": _err(), "/sys/module/ccp": {"entries": ["parameters"]}},
        "iommu_groups": {"types": {"DMA-FQ": 40}},
        "rlimit_memlock": {"soft": 8388608, "hard": 8388608},
        "devices": {"/dev/sev": dev_sev_entry,
                    "/dev/kvm": {"exists": kvm, "readable": kvm, "writable": kvm, "api_version": 12,
                                 "sev_vmsa_features": vmsa_features if vmsa_features is not None else _err(6, "ENXIO")}
                    if kvm else {"exists": False}},
        "ioctl": ioctl,
        "dmesg": {"source": "dmesg", "text": dmesg, "attempts": []} if dmesg is not None
        else {"error": "kernel log not readable", "attempts": []},
        "qemu": qemu,
        "ovmf": _ovmf_section([ovmf_image(p) if isinstance(p, str) else p for p in ovmf]),
    }
    return RawInputs(data, origin="synthetic")


def access_denied() -> dict[str, Any]:
    return _err(errno.EACCES, "Permission denied")


def no_such_file() -> dict[str, Any]:
    return _err()
