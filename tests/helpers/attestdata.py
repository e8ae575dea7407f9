"""The real attestation captures in tests/data/realdata/attestation and what PROVENANCE.md says
about each (PAIRS, SIGNERS), with readers that fail loudly when a capture is missing."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sevkit.attestation import load_certificates, split_leaf

REALDATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "realdata"
ATT = REALDATA / "attestation"


def require_realdata() -> Path:
    """Fail loudly (never skip) when the real captures are not beside the repo."""
    if not (ATT / "virtee-sev" / "report_milan.bin").is_file():
        pytest.fail(f"real attestation data missing at {ATT.resolve()} (expected tests/data/realdata in the clone)")
    return ATT


# The capture dates of reports signed by a VLEK: a VLEK lives one year, so the chain is checked
# at a moment within the certificate's validity, as a verifier would have at capture time.
AWS_CAPTURE = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Pair:
    report: str
    cert: str
    chain: str
    product: str
    version: int
    key: str
    fw: str
    tcb: tuple[int, int, int, int]     # BL, TEE, SNP, UCODE
    fmt: str = "binary"
    at: dt.datetime | None = None


# From tests/data/realdata/PROVENANCE.md, "Attestation test vectors".
PAIRS = [
    Pair("virtee-sev/report_milan.bin", "virtee-sev/vcek_milan.der", "virtee-sev/cert_chain_milan",
         "Milan", 2, "VCEK", "1.52.4", (3, 0, 8, 115)),
    Pair("virtee-sev/report_milan.hex", "virtee-sev/vcek_milan.der", "virtee-sev/cert_chain_milan",
         "Milan", 2, "VCEK", "1.52.4", (3, 0, 8, 115), fmt="hex"),
    Pair("go-sev-guest/attestation.bin", "go-sev-guest/vcek.testcer", "go-sev-guest/ask_ark_milan.pem",
         "Milan", 2, "VCEK", "1.49.3", (2, 0, 5, 68)),
    Pair("constellation/attestation.bin", "constellation/vcek.cert", "constellation/certchain.pem",
         "Milan", 2, "VCEK", "1.51.1", (2, 0, 6, 93)),
    Pair("constellation/attestation.bin", "constellation/vcek.pem", "constellation/certchain.pem",
         "Milan", 2, "VCEK", "1.51.1", (2, 0, 6, 93)),
    Pair("constellation/aws_report.txt", "constellation/aws_vlek.pem", "constellation/aws_certchain.pem",
         "Milan", 3, "VLEK", "1.55.29", (4, 0, 24, 217), fmt="base64", at=AWS_CAPTURE),
    Pair("trustee/test-report.bin", "trustee/test-vcek.der", "trustee/milan_ask_ark_asvk.pem",
         "Milan", 2, "VCEK", "1.52.4", (3, 0, 8, 115)),
    Pair("trustee/hcl-report.bin", "trustee/vcek.pem", "trustee/vcek.pem",
         "Milan", 2, "VCEK", "1.52.4", (3, 0, 8, 115), fmt="azure-hcl"),
    Pair("trustee/hcl-report.snp-report.derived.bin", "trustee/vcek.pem", "trustee/vcek.pem",
         "Milan", 2, "VCEK", "1.52.4", (3, 0, 8, 115)),
    Pair("trustee/e2e-evidence.report.derived.bin", "trustee/e2e-evidence.vcek.derived.der",
         "go-sev-guest/ask_ark_genoa.pem", "Genoa", 3, "VCEK", "1.55.40", (10, 0, 23, 25)),
    Pair("oak/cb_report.extracted.bin", "oak/cb_vcek.extracted.der", "virtee-sev/cert_chain_milan",
         "Milan", 3, "VCEK", "1.55.29", (4, 0, 24, 219)),
    Pair("oak/milan_oc_release_report.extracted.bin", "oak/milan_oc_release_vcek.extracted.der",
         "trustee/milan_ask_ark_asvk.pem", "Milan", 3, "VCEK", "1.55.29", (4, 0, 24, 219)),
    Pair("oak/milan_rk_release_report.extracted.bin", "oak/milan_rk_release_vcek.extracted.der",
         "go-sev-guest/ask_ark_milan.pem", "Milan", 3, "VCEK", "1.55.29", (4, 0, 24, 219)),
    Pair("oak/genoa_oc_report.extracted.bin", "oak/genoa_oc_vcek.extracted.der",
         "trustee/genoa_ask_ark_asvk.pem", "Genoa", 5, "VCEK", "1.55.43", (10, 0, 25, 84)),
]

# Every signing certificate (VCEK or VLEK) in the folder, including ones that sign no report here.
SIGNERS = [
    "virtee-sev/vcek_milan.der", "virtee-sev/vcek_turin.der", "go-sev-guest/vcek.testcer",
    "constellation/vcek.cert", "constellation/vcek.pem", "constellation/aws_vlek.pem", "constellation/vlek.pem",
    "trustee/test-vcek.der", "trustee/vcek.pem", "trustee/vcek-genoa.pem", "trustee/e2e-evidence.vcek.derived.der",
    "oak/cb_vcek.extracted.der", "oak/milan_oc_release_vcek.extracted.der",
    "oak/milan_rk_release_vcek.extracted.der", "oak/genoa_oc_vcek.extracted.der",
]


def read(rel: str) -> bytes:
    return (require_realdata() / rel).read_bytes()


def leaf_of(rel: str):  # type: ignore[no-untyped-def]
    return split_leaf(load_certificates(read(rel), rel), rel)[0]


def key_id(rel: str) -> str:
    pub = leaf_of(rel).public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pub).hexdigest()
