"""Where distributions install OVMF, and which build a guest kind needs.

SEV and SEV-ES boot the standard OVMF (OvmfPkgX64) as pflash CODE + a per-guest VARS copy;
SEV-SNP needs one combined image for ``-bios`` (sev-facts.md §8.3/§8.5). These paths serve the
plain guest and rank the candidates; for SEV kinds sevkit.guests.firmware chooses by content.
"""

from __future__ import annotations

from pathlib import Path

from .spec import Firmware

PFLASH_PAIRS = (
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),      # Debian/Ubuntu
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),  # Fedora/RHEL
    ("/usr/share/qemu/ovmf-x86_64-code.bin", "/usr/share/qemu/ovmf-x86_64-vars.bin"),  # SUSE
)
# Combined images usable with -bios for SNP (AmdSevX64 or OvmfPkgX64 OVMF.fd).
BIOS_IMAGES = (
    "/usr/share/OVMF/OVMF.amdsev.fd",
    "/usr/share/ovmf/OVMF.amdsev.fd",
    "/usr/share/edk2/ovmf/OVMF.amdsev.fd",
    "/usr/share/OVMF/OVMF.fd",
    "/usr/share/ovmf/OVMF.fd",
    "/usr/share/edk2/ovmf/OVMF.fd",
)


def find_pflash(code: str | None = None, vars_template: str | None = None) -> Firmware | None:
    """OVMF as pflash: the given pair, else the first installed pair; None if there is none."""
    if code and vars_template:
        return Firmware("pflash", Path(code), Path(vars_template))
    for c, v in PFLASH_PAIRS:
        if Path(c).is_file() and Path(v).is_file():
            return Firmware("pflash", Path(c), Path(v))
    return None


def find_bios(image: str | Path | None = None) -> Firmware | None:
    """A combined OVMF image for ``-bios``: the given one, else an installed one; None if none."""
    if image:
        return Firmware("bios", image=Path(image))
    for p in BIOS_IMAGES:
        if Path(p).is_file():
            return Firmware("bios", image=Path(p))
    return None


def searched_bios() -> str:
    return ", ".join(BIOS_IMAGES)
