"""``sevkit attest``: exit 0/1/2, the JSON verdict, and one clear line for unusable input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.attestdata import ATT, PAIRS, require_realdata

from sevkit.cli import main

MILAN = PAIRS[0]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sevkit", "attest", *args], capture_output=True, text=True,
                          timeout=60)


def test_verify_json_end_to_end() -> None:
    require_realdata()
    rep = ATT / MILAN.report
    res = run_cli("verify", "--json", str(rep), "--cert", str(ATT / MILAN.cert), "--vmpl", "0",
                  "--min-tcb", "bl=3,tee=0,snp=8,ucode=115", "--policy", "0x30000", "--smt", "on")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["verified"] is True and out["ok"] is True
    assert out["product"] == "Milan" and out["signing_key"] == "VCEK" and out["version"] == 2
    assert out["vmpl"] == 0 and len(out["measurement"]) == 96 and len(out["report_data"]) == 128
    assert out["reported_tcb"]["microcode"] == 115 and out["policy"]["raw"] == "0x30000"
    names = {c["name"] for c in out["checks"]}
    assert {"report_signature", "vmpl", "reported_tcb_at_least_minimum", "policy", "policy_smt"} <= names
    assert res.stderr == ""


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.report)
def test_every_real_report_exit_0(pair, capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["attest", "verify", "--json", str(ATT / pair.report), "--cert", str(ATT / pair.cert),
            "--chain", str(ATT / pair.chain), "--allow-debug"]
    if pair.at is not None:
        args += ["--at", pair.at.date().isoformat()]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["product"] == pair.product and out["signing_key"] == pair.key and out["version"] == pair.version


def test_nonce_and_expectation_mismatch_exit_1(capsys) -> None:  # type: ignore[no-untyped-def]
    require_realdata()
    base = ["attest", "verify", "--json", str(ATT / MILAN.report), "--cert", str(ATT / MILAN.cert)]
    assert main([*base, "--nonce", "00" * 64]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is True and out["ok"] is False
    bad = [c for c in out["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in bad] == ["report_data_equals_nonce"]
    assert main([*base, "--measurement", "11" * 48, "--vmpl", "1", "--min-tcb", "snp=9"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert {c["name"] for c in out["checks"] if c["status"] == "fail"} == {
        "measurement", "vmpl", "reported_tcb_at_least_minimum"}


def test_debug_policy_fails_unless_allowed(capsys) -> None:  # type: ignore[no-untyped-def]
    """go-sev-guest's report was launched with policy 0xb0000 (DEBUG allowed)."""
    rep, cert = ATT / "go-sev-guest/attestation.bin", ATT / "go-sev-guest/vcek.testcer"
    assert main(["attest", "verify", str(rep), "--cert", str(cert)]) == 1
    assert "FAIL policy_debug_off" in capsys.readouterr().out
    assert main(["attest", "verify", str(rep), "--cert", str(cert), "--allow-debug",
                 "--nonce", "0102030405"]) == 0


def test_wrong_certificate_exit_1(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["attest", "verify", str(ATT / MILAN.report), "--cert", str(ATT / "oak/cb_vcek.extracted.der")]) == 1
    out = capsys.readouterr().out
    assert "FAIL report_signature" in out and "verdict: NOT VERIFIED" in out


def _unusable_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    report = (ATT / MILAN.report).read_bytes()
    cert = str(ATT / MILAN.cert)
    (tmp / "trunc.bin").write_bytes(report[:1000])
    (tmp / "junk.bin").write_bytes(bytes((i * 7 + 3) % 256 for i in range(2000)))
    (tmp / "empty.bin").write_bytes(b"")
    (tmp / "odd.hex").write_text("abc")
    (tmp / "text.txt").write_text("this is not a report at all\n")
    (tmp / "v1.bin").write_bytes((1).to_bytes(4, "little") + report[4:])
    (tmp / "hcl-short.bin").write_bytes(b"HCLA" + bytes(300))
    (tmp / "hex-trunc.hex").write_text(report[:600].hex())
    return {
        "truncated": ([str(tmp / "trunc.bin"), "--cert", cert], "truncated report: 1000 bytes"),
        "junk": ([str(tmp / "junk.bin"), "--cert", cert], "unsupported report version"),
        "empty": ([str(tmp / "empty.bin"), "--cert", cert], "empty file"),
        "missing": ([str(tmp / "nope.bin"), "--cert", cert], "no such file"),
        "directory": ([str(tmp), "--cert", cert], "is a directory"),
        "odd-hex": ([str(tmp / "odd.hex"), "--cert", cert], "truncated report"),
        "prose": ([str(tmp / "text.txt"), "--cert", cert], "neither hex nor base64"),
        "version-1": ([str(tmp / "v1.bin"), "--cert", cert], "unsupported report version 1"),
        "short-hcl": ([str(tmp / "hcl-short.bin"), "--cert", cert], "Azure HCL report"),
        "truncated-hex": ([str(tmp / "hex-trunc.hex"), "--cert", cert], "truncated report: 600 bytes"),
        "cert-as-report": ([cert, "--cert", cert], "unsupported report version"),
        "json-as-report": ([str(ATT / "trustee/e2e-evidence.json"), "--cert", cert], "neither hex nor base64"),
        "protobuf-as-report": ([str(ATT / "oak/genoa_oc_evidence.binarypb"), "--cert", cert],
                               "unsupported report version"),
        "report-as-cert": ([str(ATT / MILAN.report), "--cert", str(ATT / MILAN.report)],
                           "not a DER or PEM X.509 certificate"),
        "report-as-chain": ([str(ATT / MILAN.report), "--cert", cert, "--chain", str(ATT / MILAN.report)],
                            "not a DER or PEM X.509 certificate"),
        "vcek-as-chain": ([str(ATT / MILAN.report), "--cert", cert, "--chain", cert],
                          "expected one self-issued ARK"),
        "bad-nonce": ([str(ATT / MILAN.report), "--cert", cert, "--nonce", "xyz"], "--nonce"),
        "long-nonce": ([str(ATT / MILAN.report), "--cert", cert, "--nonce", "00" * 65], "--nonce"),
        "bad-min-tcb": ([str(ATT / MILAN.report), "--cert", cert, "--min-tcb", "foo"], "minimum TCB"),
        "bad-at": ([str(ATT / MILAN.report), "--cert", cert, "--at", "yesterday"], "--at"),
    }


@pytest.mark.parametrize("case", [
    "truncated", "junk", "empty", "missing", "directory", "odd-hex", "prose", "version-1", "short-hcl",
    "truncated-hex", "cert-as-report", "json-as-report", "protobuf-as-report", "report-as-cert",
    "report-as-chain", "vcek-as-chain", "bad-nonce", "long-nonce", "bad-min-tcb", "bad-at"])
def test_unusable_input_exit_2_one_line(case: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    require_realdata()
    args, needle = _unusable_inputs(tmp_path)[case]
    assert main(["attest", "verify", *args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sevkit: error: "), err
    assert needle in lines[0] and "Traceback" not in err


def test_unusable_input_subprocess_no_traceback(tmp_path: Path) -> None:
    require_realdata()
    (tmp_path / "trunc.bin").write_bytes((ATT / MILAN.report).read_bytes()[:100])
    res = run_cli("verify", str(tmp_path / "trunc.bin"), "--cert", str(ATT / MILAN.cert))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "truncated report" in res.stderr


def test_show_json(capsys) -> None:  # type: ignore[no-untyped-def]
    require_realdata()
    assert main(["attest", "show", "--json", str(ATT / "trustee/hcl-report.bin"), "--product", "Milan"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == 2 and out["policy"]["raw"] == "0x3001f" and out["product"] == "Milan"
    assert out["current_fw"] == "1.52.4"


def test_no_cryptography_warning_reaches_the_user() -> None:
    """AMD VCEKs' serial numbers make cryptography warn; the CLI must not pass that on."""
    res = subprocess.run([sys.executable, "-W", "default", "-m", "sevkit", "attest", "verify",
                          str(ATT / MILAN.report), "--cert", str(ATT / MILAN.cert)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "Warning" not in res.stderr, res.stderr


def test_future_version_is_parsed_with_a_warning_not_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Issue 9 item 2: a version above the newest known (5) is read with the v5 layout and a warning.
    SYNTHETIC: the real Genoa v5 report with its version field set to 6 (so its signature breaks:
    exit 1, a verdict, not exit 2)."""
    real = (ATT / "oak/genoa_oc_report.extracted.bin").read_bytes()
    (tmp_path / "v6.bin").write_bytes((6).to_bytes(4, "little") + real[4:])
    assert main(["attest", "show", "--json", str(tmp_path / "v6.bin")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 6 and shown["layout_version"] == 5 and "newer than" in shown["warnings"][0]
    vcek = str(ATT / "oak/genoa_oc_vcek.extracted.der")
    assert main(["attest", "verify", str(tmp_path / "v6.bin"), "--cert", vcek]) == 1
    out = capsys.readouterr().out
    assert "warning: report version 6 is newer" in out and "FAIL report_signature" in out
