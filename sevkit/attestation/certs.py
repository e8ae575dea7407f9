"""AMD certificates: loading (DER or PEM, single or bundled), the VCEK/VLEK extensions, the
shipped ARK/ASK/ASVK roots, and choosing a chain for a signing certificate (sev-facts §7).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from ..errors import AttestationError, InputError
from .certtable import parse_cert_table
from .report import PRODUCTS, Product, product_from_name

AMD_OID = "1.3.6.1.4.1.3704.1"
OID_STRUCT_VERSION = f"{AMD_OID}.1"
OID_PRODUCT_NAME = f"{AMD_OID}.2"
OID_SPL = {"blSPL": f"{AMD_OID}.3.1", "teeSPL": f"{AMD_OID}.3.2", "snpSPL": f"{AMD_OID}.3.3",
           "ucodeSPL": f"{AMD_OID}.3.8", "fmcSPL": f"{AMD_OID}.3.9"}
OID_HWID = f"{AMD_OID}.4"
OID_CSP_ID = f"{AMD_OID}.5"


@contextmanager
def _quiet() -> Iterator[None]:
    """AMD VCEKs have non-positive serial numbers; cryptography warns on each load. The warning is
    about AMD's certificates, not something a user can act on, so it is silenced here only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def load_certificates(data: bytes, source: str = "certificate") -> list[x509.Certificate]:
    """All certificates in ``data``: one DER certificate, or PEM with one or more."""
    try:
        with _quiet():
            if b"-----BEGIN CERTIFICATE-----" in data:
                return list(x509.load_pem_x509_certificates(data))
            return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise InputError(f"{source}: not a DER or PEM X.509 certificate ({exc})") from None


def common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _der_tlv(raw: bytes) -> tuple[int, bytes]:
    """(tag, content) of one DER TLV; the AMD extension values are single primitives."""
    if len(raw) < 2:
        raise ValueError("short DER value")
    tag, length, pos = raw[0], raw[1], 2
    if length & 0x80:
        n = length & 0x7F
        length, pos = int.from_bytes(raw[2:2 + n], "big"), 2 + n
    if pos + length != len(raw):
        raise ValueError("DER length does not match the value")
    return tag, raw[pos:pos + length]


@dataclass(frozen=True, slots=True)
class AmdCertInfo:
    """What an AMD VCEK or VLEK says about itself (AMD OIDs under 1.3.6.1.4.1.3704)."""

    role: str                     # VCEK, VLEK, or the subject CN for anything else
    product_name: str | None      # e.g. Milan-B0, Genoa, Turin
    spl: dict[str, int]           # blSPL, teeSPL, snpSPL, ucodeSPL and (Turin) fmcSPL
    hwid: bytes | None            # VCEK only; 64 bytes Milan/Genoa, 8 bytes Turin
    csp_id: str | None            # VLEK only: the cloud provider


def _ext_raw(cert: x509.Certificate, oid: str) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if isinstance(value, x509.UnrecognizedExtension):
        return value.value
    return None


def amd_info(cert: x509.Certificate) -> AmdCertInfo:
    """Decode the AMD extensions; AttestationError if one is malformed."""
    cn = common_name(cert.subject)
    role = {"SEV-VCEK": "VCEK", "SEV-VLEK": "VLEK"}.get(cn, cn)
    try:
        spl: dict[str, int] = {}
        for name, oid in OID_SPL.items():
            raw = _ext_raw(cert, oid)
            if raw is not None:
                tag, content = _der_tlv(raw)
                if tag != 0x02:
                    raise ValueError(f"{name} is not a DER INTEGER")
                spl[name] = int.from_bytes(content, "big")
        product_name = None
        raw = _ext_raw(cert, OID_PRODUCT_NAME)
        if raw is not None:
            product_name = _der_tlv(raw)[1].decode("ascii", "replace")
        hwid = _ext_raw(cert, OID_HWID)
        # Real VCEKs carry hwID raw; tolerate an OCTET STRING wrapper (04 40 .. / 04 08 ..).
        if hwid is not None and hwid[:1] == b"\x04" and len(hwid) in (66, 10) and hwid[1] == len(hwid) - 2:
            hwid = hwid[2:]
        csp = _ext_raw(cert, OID_CSP_ID)
        csp_id = _der_tlv(csp)[1].decode("ascii", "replace") if csp is not None else None
    except ValueError as exc:
        raise AttestationError(f"{cn or 'certificate'}: malformed AMD extension: {exc}") from None
    return AmdCertInfo(role=role, product_name=product_name, spl=spl, hwid=hwid, csp_id=csp_id)


@dataclass(frozen=True)
class Chain:
    """ARK and the intermediate (ASK for VCEKs, ASVK for VLEKs) that signs the leaf."""

    ark: x509.Certificate
    intermediate: x509.Certificate
    source: str

    @property
    def product(self) -> Product | None:
        return product_from_name(common_name(self.ark.subject).removeprefix("ARK-"))


def shipped_chain_text(product: Product, key: str) -> bytes:
    """The PEM shipped in sevkit/data/amd for ``product`` and signing ``key`` (VCEK or VLEK)."""
    name = f"{product.lower()}_{key.lower()}_chain.pem"
    return resources.files("sevkit").joinpath("data", "amd", name).read_bytes()


def shipped_chain(product: Product, key: str) -> Chain:
    certs = load_certificates(shipped_chain_text(product, key), f"shipped {product} {key} chain")
    return chain_from_certs(certs, source=f"sevkit/data/amd/{product.lower()}_{key.lower()}_chain.pem")


def shipped_arks() -> dict[str, x509.Certificate]:
    """ARK subject CN -> certificate, for every shipped product."""
    return {common_name(a.cert.subject): a.cert for a in shipped_roots() if a.source.endswith("_vcek_chain.pem")}


def public_key_der(cert: x509.Certificate) -> bytes:
    """The SubjectPublicKeyInfo, DER: what 'the same root' means (a name can be copied, a key cannot)."""
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class TrustAnchor:
    """A root a report may chain to: one of AMD's ARKs shipped in sevkit/data/amd, or a root the user
    named explicitly (``--trust-root FILE`` / ``sev_trust_root``), which the verdict says it is."""

    cert: x509.Certificate
    kind: Literal["amd", "user"]
    source: str

    def describe(self) -> str:
        cn = common_name(self.cert.subject)
        if self.kind == "amd":
            return f"AMD root {cn} shipped with sevkit ({self.source})"
        return f"user-named root {cn} from {self.source} (NOT an AMD root shipped with sevkit)"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": common_name(self.cert.subject), "source": self.source,
                "key_sha256": hashlib.sha256(public_key_der(self.cert)).hexdigest()}


@cache
def shipped_roots() -> tuple[TrustAnchor, ...]:
    """Every ARK in sevkit/data/amd (one per product; the VCEK and VLEK files carry the same ARK)."""
    out = []
    for p in PRODUCTS:
        for key in ("VCEK", "VLEK"):
            c = shipped_chain(p, key)
            out.append(TrustAnchor(c.ark, "amd", c.source))
    return tuple(out)


def load_trust_roots(data: bytes, source: str) -> tuple[TrustAnchor, ...]:
    """The self-issued certificates in a user's ``--trust-root`` file; InputError if it holds none."""
    roots = [c for c in load_certificates(data, source) if c.subject == c.issuer]
    if not roots:
        raise InputError(f"{source}: no self-issued root certificate (a trust root is an ARK-like root)")
    return tuple(TrustAnchor(c, "user", source) for c in roots)


def trusted_anchor(ark: x509.Certificate, extra: Sequence[TrustAnchor] = ()) -> TrustAnchor | None:
    """The anchor whose public key is byte-equal to ``ark``'s: shipped AMD roots first, then ``extra``."""
    key = public_key_der(ark)
    return next((a for a in (*shipped_roots(), *extra) if public_key_der(a.cert) == key), None)


def chain_from_certs(certs: Sequence[x509.Certificate], *, source: str,
                     issuer_cn: str | None = None) -> Chain:
    """Pick the ARK (self-issued) and the intermediate that issued the leaf (``issuer_cn``)."""
    arks = [c for c in certs if c.subject == c.issuer]
    others = [c for c in certs if c.subject != c.issuer]
    if len(arks) != 1:
        raise InputError(f"{source}: expected one self-issued ARK, found {len(arks)}")
    if issuer_cn is not None:
        others = [c for c in others if common_name(c.subject) == issuer_cn] or others
    others = [c for c in others if c.issuer == arks[0].subject]
    if not others:
        raise InputError(f"{source}: no ASK/ASVK issued by {common_name(arks[0].subject)}"
                         + (f" named {issuer_cn}" if issuer_cn else ""))
    return Chain(ark=arks[0], intermediate=others[0], source=source)


def chain_for_leaf(leaf: x509.Certificate, product_hint: str | None = None) -> Chain:
    """Choose the shipped chain from the leaf's issuer CN (``SEV-Milan``, ``SEV-VLEK-Genoa``, ...),
    else from its productName or ``product_hint``; AttestationError when none fits."""
    chain = shipped_chain_for_leaf(leaf, product_hint)
    if chain is None:
        issuer = common_name(leaf.issuer)
        raise AttestationError(
            f"no shipped AMD chain for a certificate issued by {issuer!r}; pass --chain with its ASK/ASVK and ARK",
            evidence={"issuer": issuer})
    return chain


def shipped_chain_for_leaf(leaf: x509.Certificate, product_hint: str | None = None) -> Chain | None:
    """chain_for_leaf, None when no shipped product fits the leaf."""
    issuer = common_name(leaf.issuer)
    key = "VLEK" if issuer.startswith("SEV-VLEK-") or common_name(leaf.subject) == "SEV-VLEK" else "VCEK"
    product = product_from_name(issuer.removeprefix("SEV-VLEK-").removeprefix("SEV-"))
    if product is None:
        name = amd_info(leaf).product_name
        product = product_from_name(name) if name else None
    if product is None and product_hint:
        product = product_from_name(product_hint)
    return None if product is None else shipped_chain(product, key)


def host_supplied_chain(cert_table: bytes, leaf: x509.Certificate) -> Chain | None:
    """The ASK/ASVK and ARK in an extended report's certificate table (GHCB 56421 §4.1.8.1), or None
    when the host supplied no ARK and ASK. Untrusted: verify_report's trust rule decides."""
    table = parse_cert_table(cert_table)
    if "ARK" not in table or "ASK" not in table:
        return None
    try:
        certs = [*load_certificates(table["ASK"], "certificate table ASK"),
                 *load_certificates(table["ARK"], "certificate table ARK")]
        return chain_from_certs(certs, source="certificate table (host-supplied)",
                                issuer_cn=common_name(leaf.issuer))
    except InputError:
        return None      # not a chain at all: the shipped chain decides, as with no table


def split_leaf(certs: Sequence[x509.Certificate], source: str) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The signing certificate (VCEK/VLEK) and whatever else came bundled with it."""
    leaves = [c for c in certs if common_name(c.subject) in ("SEV-VCEK", "SEV-VLEK")]
    if not leaves:
        leaves = [c for c in certs if c.subject != c.issuer][:1] or list(certs[:1])
    leaf = leaves[0]
    return leaf, [c for c in certs if c is not leaf]
