"""Flipping any single bit of the signed region (0x000-0x29F) or of the signature (R, S) makes a
real report fail verification. Exhaustive for report_milan (672*8 + 2*72*8 bits); every byte of
the signed region for each other real report; and a sample through the full pipeline (parse,
chain, binding), where a flip may also be refused as unparseable.
"""

from __future__ import annotations

import time

import pytest
from helpers.attestdata import PAIRS, leaf_of, read

from sevkit.attestation import attest, load_report, report_signature_valid
from sevkit.attestation.layout import SIG_R, SIG_S, SIGNED_SIZE
from sevkit.errors import ReportParseError


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def test_every_bit_of_signed_region_and_signature_milan() -> None:
    pair = PAIRS[0]
    raw = load_report(read(pair.report)).raw
    vcek = leaf_of(pair.cert)
    assert report_signature_valid(raw, vcek)
    bits = list(range(SIGNED_SIZE * 8))
    bits += list(range(SIG_R[0] * 8, (SIG_R[0] + SIG_R[1]) * 8))
    bits += list(range(SIG_S[0] * 8, (SIG_S[0] + SIG_S[1]) * 8))
    start = time.perf_counter()
    survivors = [bit for bit in bits if report_signature_valid(_flip(raw, bit), vcek)]
    took = time.perf_counter() - start
    assert not survivors, f"bit flips that still verify: {survivors[:10]}"
    assert len(bits) == 672 * 8 + 2 * 72 * 8 == 6528
    print(f"bit flips: {len(bits)} tested in {took:.2f}s, none verified")


@pytest.mark.parametrize("pair", PAIRS[2:], ids=lambda p: p.report)
def test_one_flip_per_byte_of_every_other_report(pair) -> None:  # type: ignore[no-untyped-def]
    raw = load_report(read(pair.report)).raw
    vcek = leaf_of(pair.cert)
    assert report_signature_valid(raw, vcek)
    # a different bit in each byte so all 8 positions are covered across the region
    hits = [i for i in range(SIGNED_SIZE) if report_signature_valid(_flip(raw, i * 8 + i % 8), vcek)]
    assert not hits, f"byte flips that still verify: {hits}"


def test_full_pipeline_rejects_flips() -> None:
    """Through attest(): every byte of the signed region (one bit each) and every byte of R and S."""
    pair = PAIRS[0]
    raw = load_report(read(pair.report)).raw
    cert = read(pair.cert)
    positions = [i * 8 + (i * 3) % 8 for i in range(SIGNED_SIZE)]
    positions += [(SIG_R[0] + i) * 8 for i in range(SIG_R[1])] + [(SIG_S[0] + i) * 8 for i in range(SIG_S[1])]
    refused = 0
    for bit in positions:
        try:
            verdict = attest(_flip(raw, bit), cert)
        except ReportParseError:
            refused += 1        # e.g. VERSION no longer a known version: unusable, not verified
            continue
        assert not verdict.verified, f"bit {bit} (byte {bit // 8:#x}) still verified"
        assert any(c.name == "report_signature" and c.status == "fail" for c in verdict.checks)
    assert refused <= 4         # only flips inside VERSION can make the input unparseable
