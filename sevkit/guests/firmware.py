"""OVMF for a guest kind, chosen once per plan by what the image holds, not by its file name.

* SEV-SNP: one combined image for ``-bios`` with the SNP metadata sections (kernel-hashes capable
  first, then one that enforces them); the lab's ``--sev-ovmf`` (or the image spec's firmware) wins.
* SEV, SEV-ES: pflash CODE whose reset-vector GUID table is there (SEV) and holds the SEV-ES reset
  block (SEV-ES: QEMU needs it to start the APs), paired with a variable-store template of the same
  flash layout: edk2 builds OVMF as one flash device of FD_SIZE_IN_KB 1024, 2048 or 4096 split into
  VARS + CODE (tianocore/edk2 OvmfPkg/Include/Fdf/OvmfPkgDefines.fdf.inc; 1 and 2 MiB builds share
  the variable-store layout, 4 MiB has its own), so CODE + VARS add up to a power of two. A lab pair
  (``--sev-ovmf-code``/``--sev-ovmf-vars``) wins, but its CODE is still inspected and refused with the
  evidence when it lacks what the kind needs.
* plain: the distribution's pflash pair (sevkit.qemu.firmware.find_pflash), as before.

The analysis is the host probe's (sevkit.host.ovmf, one parser); sev-facts.md §8.5; edk2
OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm (GUID table, SEV-ES reset block).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..host.ovmf import OvmfImage
from ..qemu.firmware import PFLASH_PAIRS, find_pflash
from ..qemu.spec import Firmware
from ..vocab import GuestKind


@dataclass(frozen=True, slots=True)
class FirmwareChoice:
    """The firmware for one kind (None: none fits) and why, with the files it rests on."""

    firmware: Firmware | None
    why: str


def _known_rank(path: str) -> int:
    """Distribution defaults first (their documented pairing), then every other image by path."""
    codes = [c for c, _ in PFLASH_PAIRS]
    return codes.index(path) if path in codes else len(codes)


def _pairs(code: OvmfImage, stores: Sequence[OvmfImage]) -> list[OvmfImage]:
    """Variable stores that complete ``code`` to one flash device (sizes add up to a power of two),
    same folder first."""
    def fits(v: OvmfImage) -> bool:
        total = code.size + v.size
        return v.size > 0 and total & (total - 1) == 0
    folder = os.path.dirname(code.path)
    return sorted((v for v in stores if fits(v)), key=lambda v: (os.path.dirname(v.path) != folder, v.path))


def needs(kind: GuestKind) -> str:
    return {GuestKind.SEV: "an OVMF GUID table (SEV support)",
            GuestKind.SEV_ES: "the SEV-ES reset block in its GUID table",
            GuestKind.SEV_SNP: "the SNP metadata sections (SNP_SEC_MEM, SNP_SECRETS, CPUID)"}.get(kind, "")


def _fits(kind: GuestKind, img: OvmfImage) -> bool:
    if img.error is not None or not img.firmware:
        return False
    if kind is GuestKind.SEV_SNP:
        return img.snp and img.combined
    return img.role == "code" and (img.sev_es or kind is GuestKind.SEV)


def choose_firmware(kind: GuestKind, *, ovmf: str = "", ovmf_code: str = "", ovmf_vars: str = "",
                    images: Sequence[OvmfImage] = (), image_firmware: Path | None = None,
                    inspect: Callable[[str], OvmfImage] | None = None) -> FirmwareChoice:
    """The firmware ``kind`` boots with here. ``images``: the probe's content analysis
    (HostReport.ovmf_images); ``inspect``: the same parser for a lab-given file the probe did not see."""
    if kind is GuestKind.PLAIN:
        fw = find_pflash(ovmf_code or None, ovmf_vars or None)
        return FirmwareChoice(fw, fw.label if fw else "no OVMF pflash CODE/VARS found (give --sev-ovmf-code/-vars)")
    if kind is GuestKind.SEV_SNP:
        given = ovmf or (str(image_firmware) if image_firmware else "")
        if given:
            return FirmwareChoice(Firmware("bios", image=Path(given)), f"-bios {given} (given)")
        # kernel-hashes capable first, and of those a build that enforces the hashes
        found = sorted((i for i in images if _fits(kind, i)),
                       key=lambda i: (not i.snp_kernel_hashes, i.hashes_enforced is not True, i.path))
        if found:
            return FirmwareChoice(Firmware("bios", image=Path(found[0].path)), found[0].summary())
        return FirmwareChoice(None, "no OVMF image for -bios with " + needs(kind) + " among the probed images ("
                              + (", ".join(i.path for i in images) or "none") + "; give --sev-ovmf)")
    if ovmf_code and ovmf_vars:
        probed = _lookup(ovmf_code, images) or (inspect(ovmf_code) if inspect else None)
        if probed is not None and not _fits(kind, probed):
            return FirmwareChoice(None, f"--sev-ovmf-code {ovmf_code} lacks {needs(kind)}: {probed.summary()}")
        return FirmwareChoice(Firmware("pflash", Path(ovmf_code), Path(ovmf_vars)), f"pflash {ovmf_code} (given)")
    stores = [i for i in images if i.role == "vars"]
    codes = sorted((i for i in images if _fits(kind, i)), key=lambda i: (_known_rank(i.path), i.path))
    for code in codes:
        pair = _pairs(code, stores)
        if pair:
            return FirmwareChoice(Firmware("pflash", Path(code.path), Path(pair[0].path)),
                                  f"{code.summary()} + VARS {pair[0].path}")
    why = (f"no OVMF pflash CODE with {needs(kind)} and a matching VARS template among the probed images ("
           + (", ".join(f"{i.path} [{i.role}]" for i in images) or "none") + "; give --sev-ovmf-code/-vars)")
    return FirmwareChoice(None, why)


def _lookup(path: str, images: Sequence[OvmfImage]) -> OvmfImage | None:
    real = os.path.realpath(path)
    return next((i for i in images if real in (i.realpath, os.path.realpath(i.path))), None)
