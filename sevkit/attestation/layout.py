"""The SNP ATTESTATION_REPORT layout as data (AMD SEV-SNP ABI specification 56860, table "ATTESTATION_REPORT").

One row per field: name, offset, size, kind and the first report version that defines it.
The parser (report.py) walks this table; nothing else in sevkit hard-codes an offset of the
report body. Offsets were cross-checked against google/go-sev-guest abi/abi.go and virtee/sev
src/firmware/guest/types/snp.rs (see tests/data/realdata/PROVENANCE.md).

Versions (``layout_version``): 2; 3 and 4 share one layout (CPUID family/model/stepping at
0x188); 5 adds the mitigation vectors. Sources: virtee/sev src/firmware/guest/types/snp.rs
@9cf2adbffa20 ``ReportVariant`` decode: ``0 | 1 => Unsupported, 2 => V2, 3 | 4 => V3, 5 => V5,
_ => V5``; google/go-sev-guest abi/abi.go @af1c107a648f ``ReportVersion4 = 4`` inside
``MinSupportedReportVersion = 2`` .. ``MaxSupportedReportVersion = 5`` with the CPUID bytes read
for every ``Version >= ReportVersion3``; confidential-containers/trustee
deps/verifier/src/snp/mod.rs ``REPORT_VERSION_MAX`` raised 3 -> 4 -> 5. A version above the
newest known is parsed with the newest layout (as virtee does) and carries a warning; 0 and 1
(pre-SNP-ABI) and values no firmware emits (above MAX_PLAUSIBLE_VERSION: text, an HCL header or
a wrong offset read as a version) are refused.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

Kind = Literal["u8", "u32", "u64", "bytes", "tcb"]

REPORT_SIZE = 0x4A0          # 1184 bytes
SIGNED_SIZE = 0x2A0          # ECDSA signs bytes 0x000-0x29F
SIGNATURE_OFFSET = 0x2A0
SIG_R = (0x2A0, 72)          # little-endian, zero-padded (P-384 uses 48 of the 72 bytes)
SIG_S = (0x2E8, 72)
SUPPORTED_VERSIONS = (2, 3, 4, 5)
NEWEST_VERSION = max(SUPPORTED_VERSIONS)
MAX_PLAUSIBLE_VERSION = 0xFF  # a one-byte range is generous headroom for AMD's ABI revisions
SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    offset: int
    size: int
    kind: Kind
    since: int = 2           # first report version that defines the field
    doc: str = ""


LAYOUT: tuple[Field, ...] = (
    Field("version", 0x000, 4, "u32", doc="report format version"),
    Field("guest_svn", 0x004, 4, "u32", doc="guest SVN from the ID block"),
    Field("policy", 0x008, 8, "u64", doc="guest policy (§6.2)"),
    Field("family_id", 0x010, 16, "bytes", doc="from the ID block"),
    Field("image_id", 0x020, 16, "bytes", doc="from the ID block"),
    Field("vmpl", 0x030, 4, "u32", doc="VMPL requested in MSG_REPORT_REQ"),
    Field("signature_algo", 0x034, 4, "u32", doc="1 = ECDSA P-384 with SHA-384"),
    Field("current_tcb", 0x038, 8, "tcb"),
    Field("platform_info", 0x040, 8, "u64"),
    Field("key_info", 0x048, 4, "u32", doc="author key en, mask chip key, signing key"),
    Field("report_data", 0x050, 64, "bytes", doc="guest-supplied (nonce)"),
    Field("measurement", 0x090, 48, "bytes", doc="launch digest"),
    Field("host_data", 0x0C0, 32, "bytes"),
    Field("id_key_digest", 0x0E0, 48, "bytes"),
    Field("author_key_digest", 0x110, 48, "bytes"),
    Field("report_id", 0x140, 32, "bytes"),
    Field("report_id_ma", 0x160, 32, "bytes"),
    Field("reported_tcb", 0x180, 8, "tcb", doc="selects the VCEK"),
    Field("cpuid_fam_id", 0x188, 1, "u8", since=3),
    Field("cpuid_mod_id", 0x189, 1, "u8", since=3),
    Field("cpuid_step", 0x18A, 1, "u8", since=3),
    Field("chip_id", 0x1A0, 64, "bytes"),
    Field("committed_tcb", 0x1E0, 8, "tcb"),
    Field("current_build", 0x1E8, 1, "u8"),
    Field("current_minor", 0x1E9, 1, "u8"),
    Field("current_major", 0x1EA, 1, "u8"),
    Field("committed_build", 0x1EC, 1, "u8"),
    Field("committed_minor", 0x1ED, 1, "u8"),
    Field("committed_major", 0x1EE, 1, "u8"),
    Field("launch_tcb", 0x1F0, 8, "tcb"),
    Field("launch_mit_vector", 0x1F8, 8, "u64", since=5),
    Field("current_mit_vector", 0x200, 8, "u64", since=5),
    Field("signature_r", SIG_R[0], SIG_R[1], "bytes"),
    Field("signature_s", SIG_S[0], SIG_S[1], "bytes"),
)


def layout_version(version: int) -> int | None:
    """The layout a report of ``version`` is parsed with, None when it must be refused."""
    if version < min(SUPPORTED_VERSIONS) or version > MAX_PLAUSIBLE_VERSION:
        return None
    return min(version, NEWEST_VERSION)


def fields_for(version: int) -> tuple[Field, ...]:
    """The fields a report of ``version`` defines (a future version: the newest layout's)."""
    return tuple(f for f in LAYOUT if f.since <= min(version, NEWEST_VERSION))


def _check_layout() -> None:
    """Import-time self-check: fields lie inside the report and do not overlap."""
    spans = sorted((f.offset, f.offset + f.size, f.name) for f in LAYOUT)
    for (_, end, name), (start, _, nxt) in itertools.pairwise(spans):
        if end > start:
            raise AssertionError(f"layout: {name} overlaps {nxt}")
    if spans[-1][1] > REPORT_SIZE:
        raise AssertionError("layout: field beyond the report size")


_check_layout()
