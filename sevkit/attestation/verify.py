"""Cryptographic verification of a report: ARK -> ASK/ASVK -> VCEK/VLEK -> report (sev-facts §7).

Every step is a named Check with what was observed. A step that fails makes ``verified`` False;
it never raises. Exceptions are kept for unusable input (no key, wrong key type), which is an
AttestationError, not a verdict.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..errors import AttestationError
from .certs import AmdCertInfo, Chain, amd_info, chain_for_leaf, common_name, fingerprint, shipped_arks
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
    chain: Chain
    info: AmdCertInfo
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def verified(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def product(self) -> str | None:
        return self.report.product or self.chain.product

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"verified": self.verified, "product": self.product, "signing_key": self.info.role,
                "chain_source": self.chain.source, "checks": [c.to_dict() for c in self.checks]}


def _chain_checks(chain: Chain, leaf: x509.Certificate, role: str, pinned: bool,
                  at: dt.datetime) -> list[Check]:
    ark, inter = chain.ark, chain.intermediate
    ark_cn, inter_cn = common_name(ark.subject), common_name(inter.subject)
    inter_role = "asvk" if inter_cn.startswith("SEV-VLEK-") else "ask"
    out = []
    ok, seen = pss_signed_by(ark, ark)
    out.append(judge("ark_self_signed", ok, f"{ark_cn}: {seen}"))
    known = shipped_arks()
    if pinned:
        out.append(Check("ark_is_shipped_amd_root", "pass", f"{ark_cn} from the shipped AMD roots"))
    elif ark_cn in known:
        same = fingerprint(known[ark_cn]) == fingerprint(ark)
        out.append(judge("ark_is_shipped_amd_root", same,
                         f"{ark_cn} sha256 {fingerprint(ark)[:16]}",
                         f"shipped {ark_cn} sha256 {fingerprint(known[ark_cn])[:16]}"))
    else:
        out.append(Check("ark_is_shipped_amd_root", "info", f"{ark_cn}: no shipped root of that name",
                         detail="trusted because --chain named it"))
    ok, seen = pss_signed_by(ark, inter)
    out.append(judge(f"{inter_role}_signed_by_ark", ok, f"{inter_cn}: {seen}"))
    ok, seen = pss_signed_by(inter, leaf)
    out.append(judge(f"{role.lower()}_signed_by_{inter_role}", ok, f"{common_name(leaf.subject)}: {seen}"))
    for name, cert in (("ark", ark), (inter_role, inter), (role.lower(), leaf)):
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        out.append(judge(f"{name}_validity", start <= at <= end,
                         f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}", f"contains {at:%Y-%m-%d}"))
    return out


def _binding_checks(report: AttestationReport, info: AmdCertInfo, chain: Chain) -> list[Check]:
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
    rp, cp = report.product, chain.product
    if rp is not None and cp is not None:
        out.append(judge("product_matches_chain", rp == cp, f"report {rp} ({report.product_source})",
                         f"chain {cp}"))
    return out


def verify_report(report: AttestationReport, leaf: x509.Certificate, chain: Chain | None = None, *,
                  at: dt.datetime | None = None) -> Verification:
    """All verification checks. ``chain`` None picks the shipped chain from the leaf's issuer.

    ``at`` is the moment the certificates must be valid (default now); a VLEK lives one year, so
    checking an old capture needs the capture time. A v2 report that cannot tell Milan from
    Genoa takes the product from the certificate's productName.
    """
    info = amd_info(leaf)
    if report.product is None and info.product_name:
        report = with_product_hint(report, info.product_name)
    pinned = chain is None
    if chain is None:
        chain = chain_for_leaf(leaf, report.product)
    if report.product is None and chain.product is not None:
        report = with_product_hint(report, chain.product)
    role = info.role if info.role in ("VCEK", "VLEK") else "VCEK"
    checks = _chain_checks(chain, leaf, role, pinned, at or dt.datetime.now(dt.UTC))
    checks.append(judge("signature_algo", report.signature_algo == SIGNATURE_ALGO_ECDSA_P384_SHA384,
                        str(report.signature_algo), "1 (ECDSA P-384 SHA-384)"))
    checks.append(judge("signing_key_matches_certificate", report.signing_key == info.role,
                        f"report KEY_INFO says {report.signing_key}", f"certificate is a {info.role}"))
    ok = report_signature_valid(report.raw, leaf)
    checks.append(judge("report_signature", ok,
                        f"ECDSA P-384 over 0x000-0x29F {'valid' if ok else 'INVALID'} under "
                        f"{common_name(leaf.subject)} key sha256 {fingerprint(leaf)[:16]}"))
    checks.extend(_binding_checks(report, info, chain))
    return Verification(report=report, leaf=leaf, chain=chain, info=info, checks=tuple(checks))

