"""`sevkit probe` / `sevkit collect`: exit codes, one-line errors, JSON shape, bundle round trip."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers.hostraw import ROME, access_denied, make_raw

from sevkit.cli import main
from sevkit.host import collect_local, grade, read_bundle, write_bundle


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def comparable(report_json: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between two probes of one host (meta: origin, time, durations may differ)."""
    return {"features": report_json["features"], "identity": report_json["identity"],
            "checks": [(c["id"], c["status"], c["message"], json.dumps(c["evidence"], sort_keys=True))
                       for c in report_json["checks"]]}


@pytest.fixture
def healthy_bundle(tmp_path: Path) -> Path:
    return write_bundle(make_raw(), tmp_path / "healthy.tar.gz")   # SYNTHETIC healthy SNP host


def test_probe_bundle_profile_holds_exit_0(healthy_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["probe", "--bundle", str(healthy_bundle), "--expect", "sev-snp"], capsys)
    assert code == 0, err
    assert "[ PASS ] cpuid.sev: CPUID Fn8000_001F EAX bit 1 (SEV) is 1" in out
    assert "profile sev-snp: HOLDS" in out


def test_probe_bundle_profile_not_met_exit_1_with_hints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rome = write_bundle(make_raw(eax1=ROME, leaf_1f=(0b1111, 47 | 5 << 6, 509, 10), syscfg=1 << 23),
                        tmp_path / "rome.tar.gz")
    code, out, _ = run(["probe", "--bundle", str(rome), "--expect", "sev-snp"], capsys)
    assert code == 1
    assert "[ FAIL ] cpuid.sev_snp: CPUID Fn8000_001F EAX bit 4 (SEV-SNP) is 0" in out
    assert "hint: this CPU does not implement SEV-SNP" in out
    assert "SEV-SNP not usable: CPUID Fn8000_001F EAX bit 4 (SEV-SNP) is 0" in out
    code, _, _ = run(["probe", "--bundle", str(rome), "--expect", "sev-es"], capsys)
    assert code == 0


def test_probe_access_error_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = write_bundle(make_raw(msr_error=access_denied(), euid=1000), tmp_path / "user.tar.gz")
    code, _, err = run(["probe", "--bundle", str(b), "--expect", "sev"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "msr.syscfg.smee" in err and "Traceback" not in err
    code, out, _ = run(["probe", "--bundle", str(b)], capsys)   # an access error is exit 2 under any profile
    assert code == 2 and "[ ERROR] msr.syscfg.smee" in out


def test_probe_json_shape(healthy_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["probe", "--bundle", str(healthy_bundle), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["features"] == {"SME": True, "SEV": True, "SEV-ES": True, "SEV-SNP": True}
    assert doc["profile"] == {"expect": "none", "holds": True, "missing": [], "failures": [], "errors": []}
    for c in doc["checks"]:
        assert c["status"] in ("pass", "fail", "warn", "skip", "error")
        assert isinstance(c["evidence"], list)
        assert all({"source", "value"} <= set(e) for e in c["evidence"])
        if c["status"] != "pass":
            assert c["hint"]


BAD_INPUTS = {
    "empty": b"",
    "junk": bytes(range(256)) * 4,
    "truncated": None,        # a valid bundle cut in half
    "no_raw": "tar-without-raw",
    "bad_json": "tar-bad-json",
    "wrong_schema": "tar-wrong-schema",
}


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_bundles_one_line_exit_2(kind: str, tmp_path: Path, healthy_bundle: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"{kind}.tar.gz"
    if kind == "truncated":
        blob = healthy_bundle.read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
    elif kind == "no_raw":
        path.write_bytes(_tar({"dmesg.txt": b"hello"}))
    elif kind == "bad_json":
        path.write_bytes(_tar({"raw.json": b"{not json"}))
    elif kind == "wrong_schema":
        path.write_bytes(_tar({"raw.json": json.dumps({"schema": 99}).encode()}))
    else:
        data = BAD_INPUTS[kind]
        assert isinstance(data, bytes)
        path.write_bytes(data)
    code, out, err = run(["probe", "--bundle", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("sevkit: error: bundle ") and str(path) in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv,needle", [
    (["probe", "--bundle", "/nonexistent/host.tar.gz"], "no such file"),
    (["probe", "--bundle", "/tmp"], "is a directory"),
    (["probe", "--target", "ssh:/host"], "bad target"),
    (["probe", "--target", "ftp://host"], "bad target"),
    (["probe", "--target", "ssh://root@host:99999"], "out of range"),
    (["probe", "--target", "ssh://"], "bad target"),
    (["probe", "--expect", "snp-plus"], "--expect"),
    (["probe", "--bundle", "x.tar.gz", "--target", "ssh://root@h"], "cannot be combined"),
    (["collect", "-o", "/nonexistent-dir/host.tar.gz", "--target", "ssh://root@h:1", "--identity", "/no/key"],
     "folder /nonexistent-dir does not exist"),
    (["collect", "-o", "x.tar.gz", "--target", "ssh://root@h:1", "--identity", "/no/key"],
     "--identity /no/key: no such file"),
    (["probe", "--target", "ssh://root@127.0.0.1:1", "--identity", "/no/key"], "--identity /no/key: no such file"),
    (["probe", "--identity", "/no/key"], "--identity applies to --target ssh://"),
    (["collect", "-o", "x.tar.gz", "--identity", "/no/key"], "--identity applies to --target ssh://"),
])
def test_bad_arguments_one_line_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_ssh_target_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "id"      # a real (freshly generated) key, so the failure is the connection
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(["probe", "--target", f"ssh://root@127.0.0.1:{port}", "--identity", str(key)], capsys)
    assert code == 2 and "ssh ssh://root@127.0.0.1" in err and err.count("\n") == 1


def test_collect_into_missing_folder_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["collect", "-o", "/nonexistent-dir/host.tar.gz"], capsys)
    assert code == 2 and "does not exist" in err


def test_bundle_round_trip_grades_identically(tmp_path: Path) -> None:
    """collect -> bundle -> probe --bundle: the same raw inputs, so the same report."""
    raw = collect_local()
    back = read_bundle(write_bundle(raw, tmp_path / "host.tar.gz"))
    assert back.data == raw.data
    assert comparable(grade(back).to_json()) == comparable(grade(raw).to_json())
    with tarfile.open(tmp_path / "host.tar.gz") as tar:
        assert {"raw.json", "README.txt"} <= set(tar.getnames())


def test_cli_collect_then_probe_bundle_equals_local_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "host.tar.gz"
    code, out, _ = run(["collect", "-o", str(out_file)], capsys)
    assert code == 0 and "wrote" in out
    code_b, out_b, _ = run(["probe", "--bundle", str(out_file), "--json"], capsys)
    code_l, out_l, _ = run(["probe", "--json"], capsys)
    assert code_b == code_l
    assert comparable(json.loads(out_b)) == comparable(json.loads(out_l))
