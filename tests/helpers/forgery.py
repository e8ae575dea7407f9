"""A FORGED AMD-looking certificate chain and report, generated with `cryptography` (never presented
as real): our own ARK -> ASK -> VCEK, and the real Milan report's body with a MEASUREMENT we chose,
signed by that VCEK. Every signature in it is valid; only the root is not AMD's (issue 9 item 1)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from helpers.attestdata import read
from sevkit.attestation import load_report

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
AMD = "1.3.6.1.4.1.3704.1"
CHOSEN = bytes.fromhex("c0ffee" * 16)          # the measurement the forger wants a verifier to accept
NAMES = {"amd-names": ("ARK-Milan", "SEV-Milan", b"\x16\x08Milan-B0"),
         "home-made": ("ARK-Lab", "SEV-Lab", None)}


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


def forge(names: str) -> dict[str, bytes]:
    """report, vcek (PEM), chain (ASK + ARK PEM) and ark (PEM) of one complete forgery."""
    ark_cn, ask_cn, product = NAMES[names]
    real = load_report(read("virtee-sev/report_milan.bin"))
    ark_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ask_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    vcek_key = ec.generate_private_key(ec.SECP384R1())
    ark = _cert(ark_cn, ark_cn, ark_key.public_key(), ark_key)
    ask = _cert(ask_cn, ark_cn, ask_key.public_key(), ark_key)
    t = real.reported_tcb
    ext = {f"{AMD}.3.1": bytes([2, 1, t.bootloader]), f"{AMD}.3.2": bytes([2, 1, t.tee]),
           f"{AMD}.3.3": bytes([2, 1, t.snp]), f"{AMD}.3.8": bytes([2, 2, 0, t.microcode]),
           f"{AMD}.4": real.chip_id}
    if product is not None:
        ext[f"{AMD}.2"] = product
    vcek = _cert("SEV-VCEK", ask_cn, vcek_key.public_key(), ask_key, ext)
    forged = bytearray(real.raw)
    forged[0x90:0xC0] = CHOSEN
    r, s = decode_dss_signature(vcek_key.sign(bytes(forged[:0x2A0]), ec.ECDSA(hashes.SHA384())))
    forged[0x2A0:0x2E8] = r.to_bytes(72, "little")
    forged[0x2E8:0x330] = s.to_bytes(72, "little")
    return {"report": bytes(forged), "vcek": vcek.public_bytes(Encoding.PEM),
            "chain": ask.public_bytes(Encoding.PEM) + ark.public_bytes(Encoding.PEM),
            "ark": ark.public_bytes(Encoding.PEM)}
