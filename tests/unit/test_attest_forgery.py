"""A self-consistent FORGED chain (generated here, never presented as real): an "ARK-Milan" and
"SEV-Milan" under our own RSA keys, a "SEV-VCEK" with the real report's chip ID and TCB, and the
real Milan report re-signed with that VCEK's key. Every signature in it is valid, so the only thing
standing between it and "verified" is the pin to AMD's shipped ARK. This test proves that pin holds.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from helpers.attestdata import read

from sevkit.attestation import attest, load_report

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
AMD = "1.3.6.1.4.1.3704.1"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FORGED for a sevkit self-test")])


def _cert(subject: str, issuer: str, pub: object, key: object, extensions: dict[str, bytes] | None = None
          ) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(pub).serial_number(x509.random_serial_number())  # type: ignore[arg-type]
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30)))
    for oid, value in (extensions or {}).items():
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return b.sign(key, hashes.SHA384(), rsa_padding=PSS)  # type: ignore[arg-type]


def _forge() -> tuple[bytes, bytes, bytes]:
    real = load_report(read("virtee-sev/report_milan.bin"))
    ark_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ask_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    vcek_key = ec.generate_private_key(ec.SECP384R1())
    ark = _cert("ARK-Milan", "ARK-Milan", ark_key.public_key(), ark_key)
    ask = _cert("SEV-Milan", "ARK-Milan", ask_key.public_key(), ark_key)
    t = real.reported_tcb
    ext = {f"{AMD}.2": b"\x16\x08Milan-B0", f"{AMD}.3.1": bytes([2, 1, t.bootloader]),
           f"{AMD}.3.2": bytes([2, 1, t.tee]), f"{AMD}.3.3": bytes([2, 1, t.snp]),
           f"{AMD}.3.8": bytes([2, 2, 0, t.microcode]), f"{AMD}.4": real.chip_id}
    vcek = _cert("SEV-VCEK", "SEV-Milan", vcek_key.public_key(), ask_key, ext)
    r, s = decode_dss_signature(vcek_key.sign(real.raw[:0x2A0], ec.ECDSA(hashes.SHA384())))
    forged = bytearray(real.raw)
    forged[0x2A0:0x2E8] = r.to_bytes(72, "little")
    forged[0x2E8:0x330] = s.to_bytes(72, "little")
    chain = ask.public_bytes(Encoding.PEM) + ark.public_bytes(Encoding.PEM)
    return bytes(forged), vcek.public_bytes(Encoding.PEM), chain


def test_forged_chain_fails_only_on_the_amd_root_pin() -> None:
    report, vcek, chain = _forge()
    verdict = attest(report, vcek, chain_data=chain)
    assert not verdict.verified
    assert [c.name for c in verdict.verification.failed()] == ["ark_is_shipped_amd_root"]
    assert all(c.passed for c in verdict.checks if c.name in (
        "ark_self_signed", "ask_signed_by_ark", "vcek_signed_by_ask", "report_signature",
        "cert_hwid_matches_chip_id"))


def test_forged_vcek_fails_against_the_shipped_roots() -> None:
    report, vcek, _ = _forge()
    verdict = attest(report, vcek)
    assert not verdict.verified
    assert [c.name for c in verdict.verification.failed()] == ["vcek_signed_by_ask"]
