"""The lab's guest inputs, as one frozen value (the suite fills it from its options table)."""

from __future__ import annotations

from dataclasses import dataclass

ACCELS = ("auto", "kvm", "tcg")


@dataclass(frozen=True, slots=True)
class GuestSettings:
    """Empty strings mean "not given": sevkit's cached image, the probe's QEMU and OVMF by content.

    ``image``: an image JSON spec, or a disk (then ``kernel``/``initrd``/``append`` say how to boot it).
    ``ovmf_code``/``ovmf_vars``: pflash firmware (plain, SEV, SEV-ES); ``ovmf``: one image for ``-bios`` (SNP).
    ``accel``: auto (kvm where the host has SEV, else tcg), kvm or tcg. ``cpu``: '' = max under tcg,
    EPYC-v4 under kvm.
    """

    image: str = ""
    kernel: str = ""
    initrd: str = ""
    append: str = ""
    ovmf_code: str = ""
    ovmf_vars: str = ""
    ovmf: str = ""
    qemu: str = ""
    accel: str = "auto"
    memory_mib: int = 1024
    vcpus: int = 2
    cpu: str = ""
    worker: str = "main"

    def __post_init__(self) -> None:
        if self.accel not in ACCELS:
            raise ValueError(f"accel {self.accel!r} is not one of {', '.join(ACCELS)}")
