"""A fake image Builder that stands in for debootstrap (the real build is exercised by `make image`
and test_image_boot.py), and a fake bzImage header it writes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sevkit.errors import ImageError
from sevkit.image import Recipe


def fake_bzimage(path: Path, release: str = "6.12.117+deb13-amd64") -> None:
    data = bytearray(0x3000)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x1000).to_bytes(2, "little")
    data[0x1200:0x1200 + len(release)] = release.encode()
    path.write_bytes(bytes(data))


class FakeBuilder:
    calls = 0
    fail: str | None = None
    delay = 0.0

    def __init__(self, recipe: Recipe, workdir: Path, log: Path, deb_cache: Path, progress: Any = None) -> None:
        self.workdir, self.log = workdir, log
        self.timings: dict[str, float] = {}
        self.started = time.monotonic()
        self.messages: list[str] = []

    def say(self, msg: str) -> None:
        self.messages.append(msg)

    def build(self) -> dict[str, object]:
        type(self).calls += 1
        self.log.write_text("fake build log\n")
        (self.workdir / "rootfs").mkdir()
        time.sleep(self.delay)
        if self.fail:
            raise ImageError(self.fail)
        (self.workdir / "disk.qcow2").write_bytes(b"QFI\xfb" + b"\0" * 1000)
        fake_bzimage(self.workdir / "vmlinuz")
        (self.workdir / "initrd.img").write_bytes(b"\x1f\x8b" + b"\0" * 100)
        self.timings = {"debootstrap": 1.0}
        return {"kernel_version": "6.12.117+deb13-amd64", "kernel": self.workdir / "vmlinuz",
                "initrd": self.workdir / "initrd.img", "disk": self.workdir / "disk.qcow2", "fs_bytes": 1 << 30}
