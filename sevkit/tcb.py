"""TCB_VERSION, the 8-byte SPL vector in SNP_PLATFORM_STATUS and in every attestation report,
decoded once (host probe and report parser).

The byte order depends on the CPU family (sev-facts.md §6.3; virtee/sev
src/firmware/host/types/snp.rs ``TcbVersion::from_legacy_bytes`` / ``from_turin_bytes``, which
picks the layout from the CPUID generation):

    byte        0    1    2    3    4    5    6    7
    Milan/Genoa BL   TEE  -    -    -    -    SNP  UCODE     ("legacy", family 19h)
    Turin       FMC  BL   TEE  SNP  -    -    -    UCODE     ("turin", family 1Ah)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .errors import ReportParseError

TcbLayout = Literal["legacy", "turin"]
TURIN_FAMILY = 0x1A


def layout_for_family(family: int) -> TcbLayout:
    """The TCB byte order of a CPU family (Turin, family 1Ah, and later use the FMC layout)."""
    return "turin" if family >= TURIN_FAMILY else "legacy"


@dataclass(frozen=True, slots=True, order=False)
class TcbVersion:
    """TCB_VERSION decoded. ``fmc`` is None on Milan/Genoa, which have no FMC component."""

    raw: bytes
    layout: TcbLayout
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None

    @classmethod
    def decode(cls, raw: bytes, layout: TcbLayout) -> TcbVersion:
        if len(raw) != 8:
            raise ReportParseError(f"TCB_VERSION must be 8 bytes, got {len(raw)}")
        if layout == "turin":
            return cls(raw, layout, bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7], fmc=raw[0])
        return cls(raw, layout, bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7])

    @classmethod
    def from_int(cls, value: int, layout: TcbLayout) -> TcbVersion:
        """From the little-endian u64 the kernel returns (sev_user_data_snp_status.*_tcb_version)."""
        return cls.decode(value.to_bytes(8, "little"), layout)

    def components(self) -> dict[str, int]:
        """Named SPLs, with the KDS / VCEK-extension names."""
        out = {"blSPL": self.bootloader, "teeSPL": self.tee, "snpSPL": self.snp, "ucodeSPL": self.microcode}
        if self.fmc is not None:
            out["fmcSPL"] = self.fmc
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"raw": self.raw.hex(), "bootloader": self.bootloader, "tee": self.tee,
                             "snp": self.snp, "microcode": self.microcode}
        if self.fmc is not None:
            d["fmc"] = self.fmc
        return d

    def text(self, sep: str = ", ") -> str:
        """``FMC f, BL b, TEE t, SNP s, UCODE u`` (FMC only on Turin), joined by ``sep``."""
        parts = ([f"FMC {self.fmc}"] if self.fmc is not None else []) + [
            f"BL {self.bootloader}", f"TEE {self.tee}", f"SNP {self.snp}", f"UCODE {self.microcode}"]
        return sep.join(parts)

    def __str__(self) -> str:
        return self.text()
