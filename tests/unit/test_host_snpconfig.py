"""sevkit.host.snpconfig: SNP_SET_CONFIG structures against the kernel header's layout, refusals without
/dev/sev and of SNP_COMMIT, and the restore-in-finally logic against a SYNTHETIC firmware (FakeSev: a
device object that keeps a configuration and answers SNP_PLATFORM_STATUS / SNP_SET_CONFIG like the
firmware does; the decisions tested are snpconfig's). No real capture of these ioctls exists."""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import pytest

from sevkit.errors import PlatformConfigError
from sevkit.host import snpconfig as sc


class KernelSnpConfig(ctypes.Structure):
    """include/uapi/linux/psp-sev.h struct sev_user_data_snp_config, transcribed with its bitfields."""
    _pack_ = 1
    _fields_ = [("reported_tcb", ctypes.c_uint64), ("mask_chip_id", ctypes.c_uint32, 1),
                ("mask_chip_key", ctypes.c_uint32, 1), ("rsvd", ctypes.c_uint32, 30),
                ("rsvd1", ctypes.c_uint8 * 52)]


class KernelSnpStatus(ctypes.Structure):
    """psp-sev.h struct sev_user_data_snp_status (flag word transcribed as its first bits)."""
    _pack_ = 1
    _fields_ = [("api_major", ctypes.c_uint8), ("api_minor", ctypes.c_uint8), ("state", ctypes.c_uint8),
                ("is_rmp_initialized", ctypes.c_uint8, 1), ("rsvd", ctypes.c_uint8, 7),
                ("build_id", ctypes.c_uint32), ("mask_chip_id", ctypes.c_uint32, 1),
                ("mask_chip_key", ctypes.c_uint32, 1), ("vlek_en", ctypes.c_uint32, 1),
                ("rsvd1", ctypes.c_uint32, 29), ("guest_count", ctypes.c_uint32),
                ("current_tcb_version", ctypes.c_uint64), ("reported_tcb_version", ctypes.c_uint64)]


def test_snp_config_packs_like_the_kernel_struct() -> None:
    assert ctypes.sizeof(KernelSnpConfig) == sc.SNP_CONFIG_SIZE == 64
    assert KernelSnpConfig.reported_tcb.offset == 0 and KernelSnpConfig.rsvd1.offset == 12
    for tcb, cid, key in ((0xDB18000000000004, True, False), (0x0300000000000873, False, True), (0, True, True)):
        k = KernelSnpConfig(reported_tcb=tcb, mask_chip_id=cid, mask_chip_key=key)
        assert sc.SnpConfig(tcb, cid, key).pack() == bytes(k)


def test_snp_status_unpacks_like_the_kernel_struct() -> None:
    assert ctypes.sizeof(KernelSnpStatus) == sc.SNP_STATUS_SIZE
    k = KernelSnpStatus(api_major=1, api_minor=55, state=1, build_id=21, mask_chip_id=1, vlek_en=1,
                        guest_count=3, current_tcb_version=0xD315000000000004, reported_tcb_version=0xD115000000000004)
    st = sc.SnpState.unpack(bytes(k))
    assert st == sc.SnpState(0xD315000000000004, 0xD115000000000004, mask_chip_id=True, mask_chip_key=False)
    with pytest.raises(PlatformConfigError, match="returned 8 bytes"):
        sc.SnpState.unpack(bytes(8))


def test_ioctl_numbers() -> None:
    # _IOWR('S', 0, 16): dir 3 << 30 | size 16 << 16 | type 'S' << 8 | nr 0 (asm-generic/ioctl.h).
    assert (3 << 30 | 16 << 16 | ord("S") << 8 | 0) == sc.SEV_ISSUE_CMD
    assert (sc.SNP_PLATFORM_STATUS, sc.SNP_COMMIT, sc.SNP_SET_CONFIG) == (9, 10, 11)


def test_no_dev_sev_is_a_typed_refusal(tmp_path: Path) -> None:
    with pytest.raises(PlatformConfigError, match=r"cannot open .* read-write") as exc:
        sc.read_state(sc.DevSev(str(tmp_path / "sev")))
    assert exc.value.evidence["errno"] == 2
    if not Path("/dev/sev").exists():        # this machine: the real device path refuses the same way
        with pytest.raises(PlatformConfigError, match="cannot open /dev/sev read-write"):
            sc.read_state(sc.DevSev())


def test_snp_commit_is_refused_before_the_device_is_opened(tmp_path: Path) -> None:
    with pytest.raises(PlatformConfigError, match="never issues SNP_COMMIT"):
        sc.DevSev(str(tmp_path / "sev")).issue(sc.SNP_COMMIT, bytearray(0))


def test_lowered_tcb() -> None:
    assert sc.lowered_tcb(0xDB18000000000004) == 0xDB18000000000003
    assert sc.lowered_tcb(0x0300000000000000) == 0x0200000000000000
    assert sc.lowered_tcb(0) is None


class FakeSev:
    """SYNTHETIC firmware: keeps (reported_tcb, mask bits) and logs every command."""

    def __init__(self, *, fail_set: set[int] | None = None, ignore_set: set[int] | None = None) -> None:
        self.current, self.reported, self.flags = 0xD315000000000004, 0xD315000000000004, 0
        self.log: list[int] = []
        self.sets = 0
        self.fail_set, self.ignore_set = fail_set or set(), ignore_set or set()

    def issue(self, cmd: int, buf: bytearray) -> None:
        self.log.append(cmd)
        if cmd == sc.SNP_PLATFORM_STATUS:
            buf[:] = struct.pack("<BBBBIIIQQ", 1, 55, 1, 1, 21, self.flags, 0, self.current, self.reported)
        elif cmd == sc.SNP_SET_CONFIG:
            self.sets += 1
            if self.sets in self.fail_set:
                raise PlatformConfigError("SEV_ISSUE_CMD 11 failed: EIO, firmware error 0x3", evidence={})
            if self.sets not in self.ignore_set:
                self.reported, flags = struct.unpack_from("<QI", bytes(buf))
                self.flags = flags & 3
        else:
            raise AssertionError(f"unexpected command {cmd}")


NEW = sc.SnpConfig(0xD315000000000003, mask_chip_id=True)


def test_set_then_restore() -> None:
    dev = FakeSev()
    with sc.configured(dev, NEW) as (prior, after):
        assert after.config() == NEW
    assert sc.read_state(dev) == prior
    assert sc.SNP_COMMIT not in dev.log and dev.log.count(sc.SNP_SET_CONFIG) == 2


def test_restored_when_the_body_fails() -> None:
    dev = FakeSev()
    with pytest.raises(RuntimeError, match="report fetch"), sc.configured(dev, NEW):
        raise RuntimeError("report fetch timed out")
    assert sc.read_state(dev).config() == sc.SnpConfig(0xD315000000000004)


def test_restored_when_the_set_itself_fails() -> None:
    dev = FakeSev(fail_set={1})
    with pytest.raises(PlatformConfigError, match="firmware error 0x3"), sc.configured(dev, NEW):
        pytest.fail("the body must not run when the set failed")
    assert dev.log.count(sc.SNP_SET_CONFIG) == 2          # the restore was still sent
    assert sc.read_state(dev).config() == sc.SnpConfig(0xD315000000000004)


def test_restore_that_does_not_take_is_an_error_with_both_states() -> None:
    dev = FakeSev(ignore_set={2})
    with pytest.raises(PlatformConfigError, match="NOT restored") as exc, sc.configured(dev, NEW):
        pass
    assert exc.value.evidence["now"]["mask_chip_id"] is True
    assert exc.value.evidence["prior"]["reported_tcb"] == "0xd315000000000004"


def test_restore_failure_is_raised_even_after_a_body_failure() -> None:
    dev = FakeSev(fail_set={2})
    with pytest.raises(PlatformConfigError, match="firmware error") as exc, sc.configured(dev, NEW):
        raise RuntimeError("body")
    assert isinstance(exc.value.__context__, RuntimeError)
