"""Cryptographic verification of a report: ARK -> ASK/ASVK -> VCEK/VLEK -> report (sev-facts §7).

Every step is a named Check with what was observed. A step that fails makes ``verified`` False;
it never raises. Exceptions are kept for unusable input (no key, wrong key type), which is an
AttestationError, not a verdict.

Trust: a chain proves nothing by itself (in SNP it usually comes from the untrusted host, and
anyone can make a self-consistent ARK -> ASK -> VCEK). A report verifies only when its chain
ends at a root whose public key is byte-equal to an AMD ARK shipped in sevkit/data/amd, or to
a root the user named explicitly (``trust``); the ``ark_is_trusted_root`` check says which.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..errors import AttestationError
from .certs import (
    AmdCertInfo,
    Chain,
    TrustAnchor,
    amd_info,
    common_name,
    fingerprint,
    public_key_der,
    shipped_chain_for_leaf,
    trusted_anchor,
)
from .checks import Check, judge
from .layout import SIG_R, SIG_S, SIGNATURE_ALGO_ECDSA_P384_SHA384, SIGNED_SIZE
from .report import AttestationReport, with_product_hint

RSASSA_PSS_OID = "1.2.840.113549.1.1.10"
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def pss_signed_by(issuer: x509.Certificate, subject: x509.Certificate) -> tuple[bool, str]:
    """RSASSA-PSS SHA-384 / MGF1-SHA-384 / salt 48 over the TBS; (ok, what was seen)."""
    pub = issuer.public_key()
    if not isinstance(pub, rsa.RSAPublicKey):
        return False, f"issuer key is {type(pub).__name__}, not RSA"
    if subject.signature_algorithm_oid.dotted_string != RSASSA_PSS_OID:
        return False, f"signature algorithm {subject.signature_algorithm_oid.dotted_string}, not RSASSA-PSS"
    if subject.issuer != issuer.subject:
        return False, f"issuer name {common_name(subject.issuer)!r} is not {common_name(issuer.subject)!r}"
    try:
        pub.verify(subject.signature, subject.tbs_certificate_bytes, _PSS, hashes.SHA384())
    except InvalidSignature:
        return False, f"RSA-{pub.key_size} PSS signature does not verify"
    return True, f"RSA-{pub.key_size} PSS/SHA-384 signature valid"


def report_signature_valid(report_bytes: bytes, vcek: x509.Certificate) -> bool:
    """ECDSA P-384/SHA-384 over bytes 0x000-0x29F with R, S little-endian at 0x2A0/0x2E8.

    Works on raw bytes (no parsing) so the bit-flip self-test exercises exactly the crypto.
    """
    pub = vcek.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp384r1":
        raise AttestationError(f"{common_name(vcek.subject)}: key is not ECDSA P-384",
                               evidence={"key": type(pub).__name__})
    r = int.from_bytes(report_bytes[SIG_R[0]:SIG_R[0] + SIG_R[1]], "little")
    s = int.from_bytes(report_bytes[SIG_S[0]:SIG_S[0] + SIG_S[1]], "little")
    if not (0 < r < 1 << 384 and 0 < s < 1 << 384):
        return False
    try:
        pub.verify(encode_dss_signature(r, s), report_bytes[:SIGNED_SIZE], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Verification:
    report: AttestationReport
    leaf: x509.Certificate
    chain: Chain | None           # None: no chain given and no shipped chain fits the leaf
    info: AmdCertInfo
    checks: tuple[Check, ...] = field(default_factory=tuple)
    anchor: TrustAnchor | None = None   # the trusted root the chain ends at (None: it ends at none)

    @property
    def verified(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def product(self) -> str | None:
        return self.report.product or (self.chain.product if self.chain else None)

    @property
    def trusted_root(self) -> TrustAnchor | None:
        """The root the verdict rests on: only when the whole chain and the signature hold."""
        return self.anchor if self.verified else None

    def trust_text(self) -> str:
        """Which root the verdict rests on, in words."""
        if self.anchor is None:
            return "no trusted root: the chain ends at neither a shipped AMD root nor a --trust-root"
        if not self.verified:
            return f"none: the chain names {self.anchor.describe()}, but the checks above failed"
        return self.anchor.describe()

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"verified": self.verified, "product": self.product, "signing_key": self.info.role,
                "chain_source": self.chain.source if self.chain else None,
                "trust_root": self.trusted_root.to_dict() if self.trusted_root else None,
                "checks": [c.to_dict() for c in self.checks]}


TRUSTED = "public key byte-equal to a shipped AMD ARK (sevkit/data/amd) or to a --trust-root"


def trust_check(ark: x509.Certificate, trust: Sequence[TrustAnchor]) -> tuple[Check, TrustAnchor | None]:
    """The one trust rule, for the CLI and the suite alike: the chain's root key is a trusted key."""
    anchor = trusted_anchor(ark, trust)
    seen = f"{common_name(ark.subject)} key sha256 {hashlib.sha256(public_key_der(ark)).hexdigest()[:16]}"
    if anchor is None:
        return Check("ark_is_trusted_root", "fail", f"{seen}: not a trusted root", TRUSTED,
                     "a self-made root signs anything; name it with --trust-root only if you mean to trust it"), None
    return Check("ark_is_trusted_root", "pass", f"{seen} = {anchor.describe()}", TRUSTED), anchor


def _chain_checks(chain: Chain, leaf: x509.Certificate, role: str, trust: Sequence[TrustAnchor],
                  at: dt.datetime) -> tuple[list[Check], TrustAnchor | None]:
    ark, inter = chain.ark, chain.intermediate
    ark_cn, inter_cn = common_name(ark.subject), common_name(inter.subject)
    inter_role = "asvk" if inter_cn.startswith("SEV-VLEK-") else "ask"
    out = []
    ok, seen = pss_signed_by(ark, ark)
    out.append(judge("ark_self_signed", ok, f"{ark_cn}: {seen}"))
    check, anchor = trust_check(ark, trust)
    out.append(check)
    ok, seen = pss_signed_by(ark, inter)
    out.append(judge(f"{inter_role}_signed_by_ark", ok, f"{inter_cn}: {seen}"))
    ok, seen = pss_signed_by(inter, leaf)
    out.append(judge(f"{role.lower()}_signed_by_{inter_role}", ok, f"{common_name(leaf.subject)}: {seen}"))
    for name, cert in (("ark", ark), (inter_role, inter), (role.lower(), leaf)):
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        out.append(judge(f"{name}_validity", start <= at <= end,
                         f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}", f"contains {at:%Y-%m-%d}"))
    return out, anchor


def _binding_checks(report: AttestationReport, info: AmdCertInfo, chain: Chain | None) -> list[Check]:
    out = []
    reported = report.reported_tcb.components()
    for name, value in reported.items():
        cert_value = info.spl.get(name)
        out.append(judge(f"cert_{name}_matches_reported_tcb", cert_value == value,
                         f"certificate {cert_value}", f"report {value}"))
    if info.role == "VLEK":
        out.append(Check("cert_hwid_matches_chip_id", "info", "VLEK certificates carry no hwID"))
    elif info.hwid is None:
        out.append(judge("cert_hwid_matches_chip_id", False, "certificate has no hwID extension"))
    else:
        chip = report.chip_id[:len(info.hwid)]
        tail_zero = not any(report.chip_id[len(info.hwid):])
        out.append(judge("cert_hwid_matches_chip_id", info.hwid == chip and tail_zero,
                         f"hwID {info.hwid.hex()[:32]}... ({len(info.hwid)} bytes)",
                         f"CHIP_ID {report.chip_id.hex()[:32]}..."))
    rp, cp = report.product, (chain.product if chain else None)
    if rp is not None and cp is not None:
        out.append(judge("product_matches_chain", rp == cp, f"report {rp} ({report.product_source})",
                         f"chain {cp}"))
    return out


def verify_report(report: AttestationReport, leaf: x509.Certificate, chain: Chain | None = None, *,
                  at: dt.datetime | None = None, trust: Sequence[TrustAnchor] = ()) -> Verification:
    """All verification checks. ``chain`` None picks the shipped chain from the leaf's issuer.

    Whatever the chain, it counts only when its ARK is a trusted root (``trust_check``): a shipped
    AMD ARK or one of ``trust``, the roots the user named. A leaf no shipped chain fits, with no
    chain given, does not verify (check ``chain_to_trusted_root``).

    ``at`` is the moment the certificates must be valid (default now); a VLEK lives one year, so
    checking an old capture needs the capture time. A v2 report that cannot tell Milan from
    Genoa takes the product from the certificate's productName.
    """
    info = amd_info(leaf)
    if report.product is None and info.product_name:
        report = with_product_hint(report, info.product_name)
    if chain is None:
        chain = shipped_chain_for_leaf(leaf, report.product)
    if report.product is None and chain is not None and chain.product is not None:
        report = with_product_hint(report, chain.product)
    role = info.role if info.role in ("VCEK", "VLEK") else "VCEK"
    anchor = None
    if chain is None:
        checks = [Check("chain_to_trusted_root", "fail",
                        f"{common_name(leaf.subject)} issued by {common_name(leaf.issuer)!r}: no shipped AMD "
                        "ASK/ASVK of that name and no chain given", TRUSTED,
                        "pass --chain with its ASK/ASVK and ARK (and --trust-root if that ARK is not AMD's)")]
    else:
        checks, anchor = _chain_checks(chain, leaf, role, trust, at or dt.datetime.now(dt.UTC))
    checks.append(judge("signature_algo", report.signature_algo == SIGNATURE_ALGO_ECDSA_P384_SHA384,
                        str(report.signature_algo), "1 (ECDSA P-384 SHA-384)"))
    checks.append(judge("signing_key_matches_certificate", report.signing_key == info.role,
                        f"report KEY_INFO says {report.signing_key}", f"certificate is a {info.role}"))
    ok = report_signature_valid(report.raw, leaf)
    checks.append(judge("report_signature", ok,
                        f"ECDSA P-384 over 0x000-0x29F {'valid' if ok else 'INVALID'} under "
                        f"{common_name(leaf.subject)} key sha256 {fingerprint(leaf)[:16]}"))
    checks.extend(_binding_checks(report, info, chain))
    checks.extend(Check("report_version", "info", w) for w in report.warnings)
    return Verification(report=report, leaf=leaf, chain=chain, info=info, checks=tuple(checks), anchor=anchor)

