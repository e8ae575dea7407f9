"""SNP platform configuration: read SNP_PLATFORM_STATUS, set SNP_SET_CONFIG and restore it (issue 13 §7).

What ``snphost config set`` / ``config reset`` do (virtee/snphost src/config.rs: ``set`` builds a
``Config(TcbVersion, MaskId)`` and calls ``snp_set_config``; ``reset`` sends ``Config::default()``, all
zero, "to the last committed version"), done through the kernel's /dev/sev ioctl:

* ``ioctl(fd, SEV_ISSUE_CMD, struct sev_issue_cmd {cmd, data, error})``, SEV_ISSUE_CMD =
  ``_IOWR('S', 0, 16 bytes)`` = 0xC0105300; command ids SNP_PLATFORM_STATUS 9, SNP_COMMIT 10,
  SNP_SET_CONFIG 11 (include/uapi/linux/psp-sev.h enum). SNP_SET_CONFIG came with tip x86/sev commit
  cb645fe478ea "crypto: ccp: Add the SNP_SET_CONFIG command" (Jan 2024, in Linux 6.9); it returns
  -EINVAL unless SNP is initialised and -EPERM on a fd opened without write access
  (drivers/crypto/ccp/sev-dev.c sev_ioctl_do_snp_set_config).
* struct sev_user_data_snp_config (psp-sev.h, __packed, 64 bytes): ``__u64 reported_tcb`` at 0,
  ``__u32 mask_chip_id:1, mask_chip_key:1, rsvd:30`` at 8, ``__u8 rsvd1[52]`` at 12.
* struct sev_user_data_snp_status (32 bytes): the flag word at 8 has mask_chip_id bit 0 and
  mask_chip_key bit 1, reported_tcb_version at 24. Documentation/virt/coco/sev-guest.rst §2.6: "The
  current values of the firmware parameters affected by this command can be queried via
  SNP_PLATFORM_STATUS."

``configured()`` restores the exact prior values (read from SNP_PLATFORM_STATUS before the change) on
every path, and checks the restore. sevkit never issues SNP_COMMIT: committing firmware is irreversible
(sev-guest.rst §2.5) and no option enables it; the device refuses the command id itself.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import fcntl
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from sevkit.errors import PlatformConfigError

SEV_ISSUE_CMD = 0xC0105300
SNP_PLATFORM_STATUS, SNP_COMMIT, SNP_SET_CONFIG = 9, 10, 11
SNP_STATUS_SIZE = 32
SNP_CONFIG_FORMAT = "<QI52x"          # reported_tcb, mask bit word, rsvd1[52]
SNP_CONFIG_SIZE = struct.calcsize(SNP_CONFIG_FORMAT)
MASK_CHIP_ID, MASK_CHIP_KEY = 1 << 0, 1 << 1
COMMIT_REFUSED = ("sevkit never issues SNP_COMMIT: it commits the installed firmware and TCB irreversibly "
                  "(no rollback afterwards); run `snphost commit` yourself if you mean it")


@dataclass(frozen=True)
class SnpConfig:
    """The SNP_SET_CONFIG input: the TCB put into reports and whether CHIP_ID / the signature are masked."""

    reported_tcb: int
    mask_chip_id: bool = False
    mask_chip_key: bool = False

    def pack(self) -> bytes:
        word = (MASK_CHIP_ID if self.mask_chip_id else 0) | (MASK_CHIP_KEY if self.mask_chip_key else 0)
        return struct.pack(SNP_CONFIG_FORMAT, self.reported_tcb, word)

    def to_json(self) -> dict[str, object]:
        return {"reported_tcb": f"0x{self.reported_tcb:016x}", "mask_chip_id": self.mask_chip_id,
                "mask_chip_key": self.mask_chip_key}


@dataclass(frozen=True)
class SnpState:
    """What SNP_PLATFORM_STATUS says about the configuration (and the installed TCB it may not exceed)."""

    current_tcb: int
    reported_tcb: int
    mask_chip_id: bool
    mask_chip_key: bool

    @classmethod
    def unpack(cls, data: bytes) -> SnpState:
        if len(data) < SNP_STATUS_SIZE:
            raise PlatformConfigError(f"SNP_PLATFORM_STATUS returned {len(data)} bytes, not {SNP_STATUS_SIZE}",
                                      evidence={"hex": data.hex()})
        flags, = struct.unpack_from("<I", data, 8)
        current, reported = struct.unpack_from("<QQ", data, 16)
        return cls(current, reported, bool(flags & MASK_CHIP_ID), bool(flags & MASK_CHIP_KEY))

    def config(self) -> SnpConfig:
        return SnpConfig(self.reported_tcb, self.mask_chip_id, self.mask_chip_key)

    def to_json(self) -> dict[str, object]:
        return {"current_tcb": f"0x{self.current_tcb:016x}", **self.config().to_json()}


class SevDevice(Protocol):
    """One SEV_ISSUE_CMD: ``buf`` is the command's structure, filled in place by the firmware."""

    def issue(self, cmd: int, buf: bytearray) -> None: ...


class _SevIssueCmd(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("cmd", ctypes.c_uint32), ("data", ctypes.c_uint64), ("error", ctypes.c_uint32)]


class DevSev:
    """The host's /dev/sev, opened read-write (SNP_SET_CONFIG needs FMODE_WRITE); never SNP_COMMIT."""

    def __init__(self, path: str = "/dev/sev") -> None:
        self.path = path

    def issue(self, cmd: int, buf: bytearray) -> None:
        if cmd == SNP_COMMIT:
            raise PlatformConfigError(COMMIT_REFUSED, evidence={"command": cmd})
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise PlatformConfigError(f"cannot open {self.path} read-write: {exc.strerror}",
                                      evidence={"path": self.path, "errno": exc.errno}) from None
        cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
        arg = _SevIssueCmd(cmd, ctypes.addressof(cbuf), 0)
        try:
            fcntl.ioctl(fd, SEV_ISSUE_CMD, arg)  # type: ignore[call-overload,unused-ignore]
        except OSError as exc:
            name = errno_mod.errorcode.get(exc.errno or 0, str(exc.errno))
            raise PlatformConfigError(f"SEV_ISSUE_CMD {cmd} failed: {name}, firmware error {arg.error:#x}",
                                      evidence={"command": cmd, "errno": exc.errno, "fw_error": int(arg.error)}
                                      ) from None
        finally:
            del cbuf
            os.close(fd)


def read_state(dev: SevDevice) -> SnpState:
    buf = bytearray(SNP_STATUS_SIZE)
    dev.issue(SNP_PLATFORM_STATUS, buf)
    return SnpState.unpack(bytes(buf))


def set_config(dev: SevDevice, cfg: SnpConfig) -> None:
    dev.issue(SNP_SET_CONFIG, bytearray(cfg.pack()))


def lowered_tcb(tcb: int) -> int | None:
    """A reported TCB one SVN below ``tcb`` in its lowest non-zero byte (every non-zero byte of a
    TCB_VERSION is an SVN on Milan/Genoa and Turin alike), so never above the installed TCB; None when
    every byte is 0."""
    for i in range(8):
        if tcb >> 8 * i & 0xFF:
            return tcb - (1 << 8 * i)
    return None


@contextmanager
def configured(dev: SevDevice, cfg: SnpConfig) -> Iterator[tuple[SnpState, SnpState]]:
    """Set ``cfg``; yield (state before, state after the set); on every path set the prior values back
    and check SNP_PLATFORM_STATUS shows them (PlatformConfigError with both states otherwise)."""
    prior = read_state(dev)
    try:
        set_config(dev, cfg)
        yield prior, read_state(dev)
    finally:
        set_config(dev, prior.config())
        now = read_state(dev)
        if now.config() != prior.config():
            raise PlatformConfigError("SNP configuration NOT restored: the platform still reports "
                                      f"{now.config().to_json()}, it had {prior.config().to_json()}",
                                      evidence={"prior": prior.to_json(), "now": now.to_json()})
