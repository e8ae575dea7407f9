"""Parse an SNP attestation report into a frozen dataclass (layout in layout.py).

The generation (Milan, Genoa, Turin) decides the TCB byte layout and the KDS product name:
v3+ reports carry CPUID family/model; for v2 a Turin CHIP_ID is 8 bytes followed by zero
padding, and Milan vs Genoa can only come from the certificate (``product_hint``, e.g. the
VCEK's productName). sev-facts §6.3, §6.4.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from ..errors import ReportParseError
from ..tcb import TcbLayout, TcbVersion, layout_for_family
from .layout import (
    MAX_PLAUSIBLE_VERSION,
    NEWEST_VERSION,
    REPORT_SIZE,
    SIGNED_SIZE,
    SUPPORTED_VERSIONS,
    fields_for,
    layout_version,
)

Product = Literal["Milan", "Genoa", "Turin"]
PRODUCTS: tuple[Product, ...] = ("Milan", "Genoa", "Turin")
SIGNING_KEYS = {0: "VCEK", 1: "VLEK", 7: "none"}


def _bit(value: int, n: int) -> bool:
    return bool((value >> n) & 1)


@dataclass(frozen=True, slots=True)
class Policy:
    """Guest policy (§6.2)."""

    raw: int
    abi_minor: int
    abi_major: int
    smt: bool
    reserved_must_be_one: bool   # bit 17; firmware rejects a launch with it clear
    migrate_ma: bool
    debug: bool
    single_socket: bool
    cxl_allow: bool
    mem_aes_256_xts: bool
    rapl_dis: bool
    ciphertext_hiding: bool
    page_swap_disable: bool
    reserved_bits_set: int       # bits 63:26, must be zero

    @classmethod
    def decode(cls, raw: int) -> Policy:
        return cls(raw=raw, abi_minor=raw & 0xFF, abi_major=(raw >> 8) & 0xFF, smt=_bit(raw, 16),
                   reserved_must_be_one=_bit(raw, 17), migrate_ma=_bit(raw, 18), debug=_bit(raw, 19),
                   single_socket=_bit(raw, 20), cxl_allow=_bit(raw, 21), mem_aes_256_xts=_bit(raw, 22),
                   rapl_dis=_bit(raw, 23), ciphertext_hiding=_bit(raw, 24), page_swap_disable=_bit(raw, 25),
                   reserved_bits_set=raw >> 26)


@dataclass(frozen=True, slots=True)
class PlatformInfo:
    raw: int
    smt_en: bool
    tsme_en: bool
    ecc_en: bool
    rapl_dis: bool
    ciphertext_hiding_en: bool
    alias_check_complete: bool   # v3+ only; always False in v2
    sev_tio_en: bool

    @classmethod
    def decode(cls, raw: int) -> PlatformInfo:
        return cls(raw=raw, smt_en=_bit(raw, 0), tsme_en=_bit(raw, 1), ecc_en=_bit(raw, 2),
                   rapl_dis=_bit(raw, 3), ciphertext_hiding_en=_bit(raw, 4),
                   alias_check_complete=_bit(raw, 5), sev_tio_en=_bit(raw, 7))


@dataclass(frozen=True, slots=True)
class KeyInfo:
    raw: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: str             # VCEK, VLEK, none, or reserved(N)

    @classmethod
    def decode(cls, raw: int) -> KeyInfo:
        code = (raw >> 2) & 0x7
        return cls(raw=raw, author_key_en=_bit(raw, 0), mask_chip_key=_bit(raw, 1),
                   signing_key=SIGNING_KEYS.get(code, f"reserved({code})"))


@dataclass(frozen=True, slots=True)
class FirmwareVersion:
    major: int
    minor: int
    build: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.build}"


def product_from_cpuid(family: int, model: int) -> Product | None:
    """KDS product for a CPUID family/model (virtee/snpguest; Bergamo/Siena use Genoa)."""
    if family == 0x19 and model <= 0x0F:
        return "Milan"
    if family == 0x19 and (0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF):
        return "Genoa"
    if family == 0x1A and model <= 0x11:
        return "Turin"
    return None


def product_from_name(name: str) -> Product | None:
    """Product from a VCEK productName (``Milan-B0``, ``Genoa``, ``Turin``) or a user string."""
    head = name.strip().split("-")[0].lower()
    for p in PRODUCTS:
        if head == p.lower():
            return p
    return None


@dataclass(frozen=True, slots=True)
class AttestationReport:
    """One parsed ATTESTATION_REPORT. ``raw`` is exactly the 1184 report bytes."""

    raw: bytes
    version: int
    guest_svn: int
    policy: Policy
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: TcbVersion
    platform_info: PlatformInfo
    key_info: KeyInfo
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: TcbVersion
    cpuid_fam_id: int | None
    cpuid_mod_id: int | None
    cpuid_step: int | None
    chip_id: bytes
    committed_tcb: TcbVersion
    current_fw: FirmwareVersion
    committed_fw: FirmwareVersion
    launch_tcb: TcbVersion
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int
    product: Product | None
    product_source: str          # cpuid, chip_id, hint, or unknown
    trailing_bytes: int = 0      # bytes after the report in the input (ignored, not signed)
    layout_version: int = 0      # the layout the bytes were read with (version, or the newest known)
    warnings: tuple[str, ...] = ()

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    @property
    def signing_key(self) -> str:
        return self.key_info.signing_key

    @property
    def hwid(self) -> bytes:
        """CHIP_ID as KDS and the VCEK hwID use it (Turin: the first 8 bytes)."""
        return self.chip_id[:8] if self.product == "Turin" else self.chip_id

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view: bytes as lowercase hex, decoded bit fields spelled out."""
        def tcb(t: TcbVersion) -> dict[str, Any]:
            return t.to_dict()
        p = self.policy
        return {
            "version": self.version, "guest_svn": self.guest_svn,
            "policy": {"raw": hex(p.raw), "abi_major": p.abi_major, "abi_minor": p.abi_minor,
                       "smt": p.smt, "reserved_must_be_one": p.reserved_must_be_one,
                       "migrate_ma": p.migrate_ma, "debug": p.debug, "single_socket": p.single_socket,
                       "cxl_allow": p.cxl_allow, "mem_aes_256_xts": p.mem_aes_256_xts,
                       "rapl_dis": p.rapl_dis, "ciphertext_hiding": p.ciphertext_hiding,
                       "page_swap_disable": p.page_swap_disable, "reserved_bits_set": p.reserved_bits_set},
            "family_id": self.family_id.hex(), "image_id": self.image_id.hex(), "vmpl": self.vmpl,
            "signature_algo": self.signature_algo,
            "platform_info": {"raw": hex(self.platform_info.raw), "smt_en": self.platform_info.smt_en,
                              "tsme_en": self.platform_info.tsme_en, "ecc_en": self.platform_info.ecc_en,
                              "rapl_dis": self.platform_info.rapl_dis,
                              "ciphertext_hiding_en": self.platform_info.ciphertext_hiding_en,
                              "alias_check_complete": self.platform_info.alias_check_complete,
                              "sev_tio_en": self.platform_info.sev_tio_en},
            "key_info": {"raw": hex(self.key_info.raw), "author_key_en": self.key_info.author_key_en,
                         "mask_chip_key": self.key_info.mask_chip_key,
                         "signing_key": self.key_info.signing_key},
            "report_data": self.report_data.hex(), "measurement": self.measurement.hex(),
            "host_data": self.host_data.hex(), "id_key_digest": self.id_key_digest.hex(),
            "author_key_digest": self.author_key_digest.hex(), "report_id": self.report_id.hex(),
            "report_id_ma": self.report_id_ma.hex(),
            "current_tcb": tcb(self.current_tcb), "reported_tcb": tcb(self.reported_tcb),
            "committed_tcb": tcb(self.committed_tcb), "launch_tcb": tcb(self.launch_tcb),
            "cpuid": None if self.cpuid_fam_id is None else
            {"family": hex(self.cpuid_fam_id), "model": hex(self.cpuid_mod_id or 0),
             "stepping": self.cpuid_step},
            "chip_id": self.chip_id.hex(),
            "current_fw": str(self.current_fw), "committed_fw": str(self.committed_fw),
            "launch_mit_vector": None if self.launch_mit_vector is None else hex(self.launch_mit_vector),
            "current_mit_vector": None if self.current_mit_vector is None else hex(self.current_mit_vector),
            "signature": {"r": f"{self.signature_r:096x}", "s": f"{self.signature_s:096x}"},
            "product": self.product, "product_source": self.product_source,
            "trailing_bytes": self.trailing_bytes, "layout_version": self.layout_version,
            "warnings": list(self.warnings),
        }


def _decide_product(version: int, values: dict[str, Any], hint: str | None) -> tuple[Product | None, str]:
    if version >= 3:
        p = product_from_cpuid(values["cpuid_fam_id"], values["cpuid_mod_id"])
        if p is not None:
            return p, "cpuid"
    chip: bytes = values["chip_id"]
    if version == 2 and any(chip[:8]) and not any(chip[8:]):
        return "Turin", "chip_id"
    if hint:
        p = product_from_name(hint)
        if p is not None:
            return p, "hint"
    return None, "unknown"


def parse_report(data: bytes, *, product_hint: str | None = None) -> AttestationReport:
    """Parse raw report bytes (at least 1184; bytes after the report are counted and ignored).

    Raises ReportParseError for truncated input and for versions 0, 1 or above
    MAX_PLAUSIBLE_VERSION; a version above the newest known is read with the newest layout and
    a warning (layout.py says why).
    """
    if len(data) < REPORT_SIZE:
        raise ReportParseError(
            f"truncated report: {len(data)} bytes, an SNP attestation report is {REPORT_SIZE} (0x4A0)",
            evidence={"length": len(data)})
    raw = bytes(data[:REPORT_SIZE])
    version = int.from_bytes(raw[0:4], "little")
    layout = layout_version(version)
    if layout is None:
        raise ReportParseError(
            f"unsupported report version {version} (0x{version:x}): sevkit parses versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))} (and later ones up to {MAX_PLAUSIBLE_VERSION} "
            f"with the v{NEWEST_VERSION} layout); this is not an SNP attestation report",
            evidence={"version": version, "first_bytes": raw[:16].hex()})
    warnings: tuple[str, ...] = ()
    if version > NEWEST_VERSION:
        warnings = (f"report version {version} is newer than the newest sevkit knows ({NEWEST_VERSION}): "
                    f"parsed with the v{NEWEST_VERSION} layout; fields added after v{NEWEST_VERSION} "
                    "are not decoded",)
    values: dict[str, Any] = {}
    for f in fields_for(version):
        chunk = raw[f.offset:f.offset + f.size]
        values[f.name] = chunk if f.kind in ("bytes", "tcb") else int.from_bytes(chunk, "little")
    product, source = _decide_product(version, values, product_hint)
    # Turin (family 1Ah) puts FMC first; everything earlier uses the legacy order.
    tcb: TcbLayout = ("turin" if product == "Turin"
                         else layout_for_family(values["cpuid_fam_id"]) if version >= 3 else "legacy")
    return AttestationReport(
        raw=raw, version=version, guest_svn=values["guest_svn"], policy=Policy.decode(values["policy"]),
        family_id=values["family_id"], image_id=values["image_id"], vmpl=values["vmpl"],
        signature_algo=values["signature_algo"],
        current_tcb=TcbVersion.decode(values["current_tcb"], tcb),
        platform_info=PlatformInfo.decode(values["platform_info"]),
        key_info=KeyInfo.decode(values["key_info"]),
        report_data=values["report_data"], measurement=values["measurement"], host_data=values["host_data"],
        id_key_digest=values["id_key_digest"], author_key_digest=values["author_key_digest"],
        report_id=values["report_id"], report_id_ma=values["report_id_ma"],
        reported_tcb=TcbVersion.decode(values["reported_tcb"], tcb),
        cpuid_fam_id=values.get("cpuid_fam_id"), cpuid_mod_id=values.get("cpuid_mod_id"),
        cpuid_step=values.get("cpuid_step"), chip_id=values["chip_id"],
        committed_tcb=TcbVersion.decode(values["committed_tcb"], tcb),
        current_fw=FirmwareVersion(values["current_major"], values["current_minor"], values["current_build"]),
        committed_fw=FirmwareVersion(values["committed_major"], values["committed_minor"],
                                     values["committed_build"]),
        launch_tcb=TcbVersion.decode(values["launch_tcb"], tcb),
        launch_mit_vector=values.get("launch_mit_vector"), current_mit_vector=values.get("current_mit_vector"),
        signature_r=int.from_bytes(values["signature_r"], "little"),
        signature_s=int.from_bytes(values["signature_s"], "little"),
        product=product, product_source=source, trailing_bytes=len(data) - REPORT_SIZE,
        layout_version=layout, warnings=warnings)


def with_product_hint(report: AttestationReport, hint: str, source: str = "certificate") -> AttestationReport:
    """Re-decode a report whose product could not be decided, naming it (e.g. from productName)."""
    if report.product is not None:
        return report
    again = parse_report(report.raw, product_hint=hint)
    if again.product is None:
        return report
    return replace(again, trailing_bytes=report.trailing_bytes, product_source=source)
