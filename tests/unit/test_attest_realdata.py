"""Every real report in tests/data/realdata/attestation verifies with its own certificate and chain,
with the fields PROVENANCE.md states, and fails under every other signing certificate.

The captures and their PROVENANCE facts live in helpers/attestdata.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from helpers.attestdata import PAIRS, SIGNERS, Pair, key_id, leaf_of, read

from sevkit.attestation import attest, load_certificates, load_report, verify_report
from sevkit.attestation.certs import chain_from_certs, common_name


def _id(p: Pair) -> str:
    return f"{p.report}@{Path(p.cert).name}"


@pytest.mark.parametrize("pair", PAIRS, ids=_id)
def test_report_verifies_with_shipped_roots(pair: Pair) -> None:
    verdict = attest(read(pair.report), read(pair.cert), at=pair.at, report_source=pair.report)
    failed = [c.line() for c in verdict.verification.checks if not c.passed]
    assert verdict.verified and not failed, failed
    names = {c.name for c in verdict.checks}
    assert {"ark_self_signed", "ark_is_trusted_root", "report_signature", "cert_hwid_matches_chip_id"} <= names
    chain = verdict.verification.chain
    assert chain is not None and chain.source.startswith("sevkit/data/amd/")
    assert verdict.verification.anchor is not None and verdict.verification.anchor.kind == "amd"


@pytest.mark.parametrize("pair", PAIRS, ids=_id)
def test_report_verifies_with_its_own_chain_file(pair: Pair) -> None:
    verdict = attest(read(pair.report), read(pair.cert), chain_data=read(pair.chain), at=pair.at)
    assert verdict.verified, [c.line() for c in verdict.failed()]
    # the chain file's ARK is the very AMD root we ship (byte-equal key), and the verdict says so
    pinned = next(c for c in verdict.checks if c.name == "ark_is_trusted_root")
    assert pinned.status == "pass" and "shipped with sevkit" in pinned.observed, pinned.line()
    anchor = verdict.verification.anchor
    assert anchor is not None and anchor.kind == "amd" and anchor.source.startswith("sevkit/data/amd/")
    assert "AMD root ARK-" in verdict.text() and verdict.to_dict()["trust_root"]["kind"] == "amd"
    inter = "asvk" if pair.key == "VLEK" else "ask"
    assert any(c.name == f"{pair.key.lower()}_signed_by_{inter}" and c.status == "pass" for c in verdict.checks)


@pytest.mark.parametrize("pair", PAIRS, ids=_id)
def test_parsed_fields_match_provenance(pair: Pair) -> None:
    v = attest(read(pair.report), read(pair.cert), at=pair.at).verification
    r = v.report
    assert r.version == pair.version
    assert r.signing_key == pair.key and v.info.role == pair.key
    assert str(r.current_fw) == pair.fw
    t = r.reported_tcb
    assert (t.bootloader, t.tee, t.snp, t.microcode) == pair.tcb
    assert t.fmc is None and t.layout == "legacy"
    assert v.product == pair.product
    assert r.signature_algo == 1
    assert r.policy.reserved_must_be_one
    if pair.version >= 3:
        assert r.product_source == "cpuid" and r.cpuid_fam_id == 0x19
    else:
        assert r.cpuid_fam_id is None and r.product_source == "certificate"
    if pair.version >= 5:
        assert r.launch_mit_vector is not None and r.current_mit_vector is not None
    else:
        assert r.launch_mit_vector is None
    if pair.key == "VLEK":
        assert not any(r.chip_id)


def test_provenance_specific_values() -> None:
    """Spot values PROVENANCE.md names beyond the table."""
    go = load_report(read("go-sev-guest/attestation.bin"))
    assert go.policy.raw == 0xB0000 and go.policy.debug and go.vmpl == 0
    assert go.report_data == bytes([1, 2, 3, 4, 5]) + bytes(59)
    const = load_report(read("constellation/attestation.bin"))
    assert const.trailing_bytes == 20 and const.policy.raw == 0x3001F
    virtee = load_report(read("virtee-sev/report_milan.bin"))
    assert virtee.policy.raw == 0x30000 and virtee.reported_tcb.raw.hex() == "0300000000000873"
    genoa = load_report(read("trustee/e2e-evidence.report.derived.bin"))
    assert (genoa.cpuid_fam_id, genoa.cpuid_mod_id, genoa.cpuid_step) == (0x19, 0xA0, 2)
    assert genoa.product == "Genoa"
    aws = load_report(read("constellation/aws_report.txt"))
    assert (aws.cpuid_fam_id, aws.cpuid_mod_id, aws.cpuid_step) == (0x19, 0x01, 1)


def test_hcl_and_derived_report_are_the_same_bytes() -> None:
    a = load_report(read("trustee/hcl-report.bin"))
    b = load_report(read("trustee/hcl-report.snp-report.derived.bin"))
    assert a.raw == b.raw == read("trustee/hcl-report.bin")[0x20:0x4C0]


def test_expired_vlek_fails_today() -> None:
    """The AWS VLEK expired 2025-12-10: without a capture time the verdict must say so."""
    verdict = attest(read("constellation/aws_report.txt"), read("constellation/aws_vlek.pem"),
                     at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert not verdict.verified
    assert [c.name for c in verdict.verification.checks if not c.passed] == ["vlek_validity"]


def _distinct_reports() -> list[Pair]:
    seen: set[bytes] = set()
    out = []
    for p in PAIRS:
        raw = load_report(read(p.report)).raw
        if raw not in seen:
            seen.add(raw)
            out.append(p)
    return out


def test_every_report_fails_under_every_other_certificate() -> None:
    """Cross-certificate negatives: N reports x M signing certificates with a different key."""
    negatives = 0
    for p in _distinct_reports():
        own = key_id(p.cert)
        report = load_report(read(p.report))
        for signer in SIGNERS:
            if key_id(signer) == own:
                continue
            v = verify_report(report, leaf_of(signer), at=p.at)
            sig = next(c for c in v.checks if c.name == "report_signature")
            assert sig.status == "fail" and not v.verified, f"{p.report} verified under {signer}"
            negatives += 1
    # 11 distinct reports x 14 other keys (15 signer files; constellation's VCEK is in two of them)
    assert len(_distinct_reports()) == 11
    assert negatives == 11 * 14 - 1
    print(f"cross-certificate negatives: {negatives}")


def test_own_chain_file_for_the_wrong_generation_is_refused_or_fails() -> None:
    """A Milan VCEK with a Genoa chain: the ASK did not sign it."""
    p = PAIRS[0]
    genoa = load_certificates(read("go-sev-guest/ask_ark_genoa.pem"))
    chain = chain_from_certs(genoa, source="genoa")
    v = verify_report(load_report(read(p.report)), leaf_of(p.cert), chain)
    assert not v.verified
    assert {c.name for c in v.failed()} >= {"vcek_signed_by_ask", "product_matches_chain"}
    assert common_name(chain.ark.subject) == "ARK-Genoa"
    assert next(c for c in v.checks if c.name == "ark_is_trusted_root").status == "pass"   # a real AMD root
