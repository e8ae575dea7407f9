"""SEV-SNP attestation: parse, verify and appraise reports; get reports from guests and VCEKs
from the KDS; compute expected launch measurements.

    load_report(bytes) -> AttestationReport          inputs.py / report.py (layout.py is the table)
    verify_report(report, leaf, chain) -> Verification   verify.py (ARK -> ASK/ASVK -> VCEK/VLEK -> report)
    appraise(report, Expectations) -> checks          appraise.py
    obtain_vcek(report, ...) / KdsClient               kds.py (cert table, cache, KDS)
    fetch_report(shell, nonce) -> GuestReport         guestfetch.py (+ guest_script.py, runs in the guest)
    expected_measurement(LaunchInputs) -> bytes       measure.py (sev-snp-measure)
    attest(...) -> Verdict                            verdict.py: all of it, as the CLI and suite use it
"""

from __future__ import annotations

from ..tcb import TcbVersion
from .appraise import Expectations, appraise, parse_min_tcb
from .certs import Chain, amd_info, chain_for_leaf, chain_from_certs, load_certificates, split_leaf
from .checks import Check
from .inputs import decode_report_bytes, load_report
from .kds import KdsClient, obtain_vcek
from .report import AttestationReport, parse_report
from .verdict import Verdict, attest
from .verify import Verification, report_signature_valid, verify_report

__all__ = [
    "AttestationReport", "Chain", "Check", "Expectations", "KdsClient", "TcbVersion", "Verdict",
    "Verification", "amd_info", "appraise", "attest", "chain_for_leaf", "chain_from_certs",
    "decode_report_bytes", "load_certificates", "load_report", "obtain_vcek", "parse_min_tcb",
    "parse_report", "report_signature_valid", "split_leaf", "verify_report",
]
