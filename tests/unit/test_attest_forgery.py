"""A complete FORGED chain (generated here with `cryptography`, never presented as real): our own
ARK -> ASK -> VCEK, and a report with a measurement we chose, signed by that VCEK. Every signature
in it is valid. Issue 9 item 1: it must not verify (exit 1) with or without --chain, and a genuine
report must still verify with its real chain (test_attest_realdata.py). Only a root the user names
with --trust-root makes it verify, and the verdict then says the root is user-named, not AMD's.

Two forgeries: one copies AMD's names (ARK-Milan, SEV-Milan, productName Milan-B0), one uses
home-made names that no shipped chain has. The report body is the real Milan report's (its chip
ID and TCB, so every binding check holds) with MEASUREMENT replaced by our chosen value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.attestdata import read
from helpers.forgery import CHOSEN, NAMES, forge

from sevkit.attestation import attest, load_report
from sevkit.cli import main


@pytest.fixture(scope="module", params=sorted(NAMES))
def forged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp(f"forged-{request.param}")
    out = {}
    for name, data in forge(request.param).items():
        out[name] = folder / name
        out[name].write_bytes(data)
    return out


def _verify(capsys: pytest.CaptureFixture[str], f: dict[str, Path], *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    rc = main(["attest", "verify", "--json", str(f["report"]), "--cert", str(f["vcek"]),
               "--measurement", CHOSEN.hex(), *extra])
    return rc, json.loads(capsys.readouterr().out)


def test_forged_chain_does_not_verify_with_chain(forged: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _verify(capsys, forged, "--chain", str(forged["chain"]))
    assert rc == 1 and out["verified"] is False and out["trust_root"] is None
    failed = [c["name"] for c in out["checks"] if c["status"] == "fail"]
    assert failed == ["ark_is_trusted_root"], failed       # everything else in the forgery is valid
    assert {c["name"]: c["status"] for c in out["checks"]}["measurement"] == "pass"   # the chosen value
    assert "no trusted root" in out["trusted_by"]


def test_forged_chain_does_not_verify_without_chain(forged: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _verify(capsys, forged)
    assert rc == 1 and out["verified"] is False and out["trust_root"] is None
    failed = {c["name"] for c in out["checks"] if c["status"] == "fail"}
    # AMD-looking names: the shipped SEV-Milan did not sign it; home-made names: no shipped chain fits
    assert failed in ({"vcek_signed_by_ask"}, {"chain_to_trusted_root"}), failed


def test_forged_chain_text_verdict(forged: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["attest", "verify", str(forged["report"]), "--cert", str(forged["vcek"]),
               "--chain", str(forged["chain"])])
    text = capsys.readouterr().out
    assert rc == 1 and "FAIL ark_is_trusted_root" in text and text.rstrip().endswith("verdict: NOT VERIFIED")


def test_named_trust_root_verifies_and_says_so(forged: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Positive control of --trust-root: the same forgery verifies once its root is named, and the
    verdict says the root is the user's, not AMD's."""
    rc, out = _verify(capsys, forged, "--chain", str(forged["chain"]), "--trust-root", str(forged["ark"]))
    assert rc == 0 and out["verified"] is True
    assert out["trust_root"]["kind"] == "user" and str(forged["ark"]) in out["trust_root"]["source"]
    assert "NOT an AMD root" in out["trusted_by"]


def test_trust_root_does_not_help_a_different_root(forged: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Naming one root trusts that key only: a second forgery's root is still refused."""
    other = forge("amd-names")
    rc, out = _verify(capsys, forged, "--chain", str(forged["chain"]), "--trust-root",
                      str(_write(forged["ark"].parent / "other-ark.pem", other["ark"])))
    assert rc == 1 and out["trust_root"] is None


def test_trust_root_must_be_a_root(forged: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["attest", "verify", str(forged["report"]), "--cert", str(forged["vcek"]), "--trust-root",
               str(forged["vcek"])])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "no self-issued root" in err


def test_library_refuses_the_forgery_like_the_cli() -> None:
    f = forge("home-made")
    verdict = attest(f["report"], f["vcek"], chain_data=f["chain"])
    assert not verdict.verified and verdict.verification.anchor is None
    assert verdict.verification.report.measurement == CHOSEN


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_host_supplied_chain_counts_only_under_the_trust_rule() -> None:
    """The suite's path: the certificate table the host fills. Real Milan ASK/ARK (virtee-sev) in it:
    verified, trusted as AMD's root. The forged ASK/ARK in it: not verified. Junk: the shipped chain."""
    from cryptography.hazmat.primitives.serialization import Encoding as Enc
    from helpers.attestdata import leaf_of

    from sevkit.attestation import load_certificates, verify_report
    from sevkit.attestation.certs import host_supplied_chain
    from sevkit.attestation.certtable import build_cert_table

    report = load_report(read("virtee-sev/report_milan.bin"))
    leaf = leaf_of("virtee-sev/vcek_milan.der")
    ask, ark = (c.public_bytes(Enc.DER) for c in load_certificates(read("virtee-sev/cert_chain_milan")))
    real = host_supplied_chain(build_cert_table({"ASK": ask, "ARK": ark}), leaf)
    assert real is not None and real.source == "certificate table (host-supplied)"
    v = verify_report(report, leaf, real)
    assert v.verified and v.trusted_root is not None and v.trusted_root.kind == "amd"

    f = forge("amd-names")
    fleaf = load_certificates(f["vcek"])[0]
    fask, fark = (c.public_bytes(Enc.DER) for c in load_certificates(f["chain"]))
    forged_chain = host_supplied_chain(build_cert_table({"ASK": fask, "ARK": fark}), fleaf)
    fv = verify_report(load_report(f["report"]), fleaf, forged_chain)
    assert not fv.verified and [c.name for c in fv.failed()] == ["ark_is_trusted_root"]

    assert host_supplied_chain(build_cert_table({"ASK": b"junk", "ARK": b"junk"}), leaf) is None
    assert host_supplied_chain(build_cert_table({"VCEK": ask}), leaf) is None
