"""The recipe of the sevkit guest image and its hash: everything that changes the built result.

The hash covers the suite, the mirror, the package list, the debootstrap variant, the build
parameters below and the text of every file in ``guest/`` (the chroot script and the credentials
unit). Changing any of them builds a new image in a new cache folder; nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..errors import UsageError
from .spec import DEFAULT_APPEND

# Bump when build.py changes the result in a way the parameters below do not capture.
BUILD_VERSION = 1

DEFAULT_SUITE = "trixie"        # Debian 13, kernel 6.12: >= 6.7, so SNP guests have configfs-tsm
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KNOWN_SUITES = ("trixie", "bookworm")

# What the guest runs and what the in-guest checks call: sshd, python3's stdlib (ctypes, fcntl, struct
# for /dev/sev-guest and /dev/cpu/*/msr), modprobe (msr, cpuid, sev-guest), ip, ps, dmesg (util-linux).
PACKAGES = (
    "linux-image-amd64", "initramfs-tools", "systemd-sysv", "udev", "dbus", "openssh-server",
    "python3", "kmod", "iproute2", "procps", "util-linux", "msr-tools",
)

# The kernel must be at least this for SNP's configfs-tsm (/sys/kernel/config/tsm/report).
MIN_KERNEL_FOR_TSM = (6, 7)

BUILD_PARAMS: dict[str, Any] = {
    "variant": "minbase",
    "components": "main",
    "fs_label": "sevroot",
    "mkfs": ["mkfs.ext4", "-q", "-F", "-L", "sevroot", "-m", "0", "-E", "root_owner=0:0"],
    "fs_headroom_mib": 1024,      # free space the guest gets on its overlay
    "disk_format": "qcow2",
    "append": DEFAULT_APPEND,
}

_SUITE_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
_MIRROR_RE = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]+)?(/[A-Za-z0-9._~\-/]*)?$")


def guest_files() -> dict[str, str]:
    """The files copied into the chroot, by name, as text."""
    root = resources.files("sevkit.image").joinpath("guest")
    return {entry.name: entry.read_text() for entry in sorted(root.iterdir(), key=lambda e: e.name)
            if entry.is_file() and not entry.name.startswith(".")}


@dataclass(frozen=True)
class Recipe:
    suite: str = DEFAULT_SUITE
    mirror: str = DEFAULT_MIRROR
    packages: tuple[str, ...] = PACKAGES
    params: dict[str, Any] = field(default_factory=lambda: dict(BUILD_PARAMS))
    files: dict[str, str] = field(default_factory=guest_files)

    def __post_init__(self) -> None:
        if not _SUITE_RE.match(self.suite):
            raise UsageError(f"suite {self.suite!r} is not a Debian suite name (like trixie or bookworm)")
        if not _MIRROR_RE.match(self.mirror):
            raise UsageError(f"mirror {self.mirror!r} is not an http(s) URL (like {DEFAULT_MIRROR})")

    @property
    def mirror_url(self) -> str:
        return self.mirror.rstrip("/")

    def canonical(self) -> dict[str, Any]:
        """The exact data the hash is taken over."""
        return {
            "build_version": BUILD_VERSION,
            "suite": self.suite,
            "mirror": self.mirror_url,
            "packages": sorted(self.packages),
            "params": self.params,
            "files": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(self.files.items())},
        }

    @property
    def hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def name(self) -> str:
        """The cache folder's name: ``<suite>-<first 16 hex of the hash>``."""
        return f"{self.suite}-{self.hash[:16]}"
