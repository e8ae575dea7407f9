"""``sevkit igvm build`` / ``measure``: a file built from Debian's OVMF_CODE.fd measures to the digest the build
printed; malformed input is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sevkit.cli import main
from sevkit.igvm.build import BuildInputs, build_ovmf_igvm
from sevkit.igvm.measure import launch_digest

OVMF = "/usr/share/OVMF/OVMF_CODE.fd"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sevkit", "igvm", *args], capture_output=True, text=True, timeout=120)


def test_build_then_measure(tmp_path: Path) -> None:
    out = tmp_path / "snp.igvm"
    res = run_cli("build", "--ovmf", OVMF, "--out", str(out), "--vcpus", "2")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    digest = launch_digest(build_ovmf_igvm(BuildInputs(Path(OVMF), vcpus=2)), 2).digest.hex()
    assert res.stdout.splitlines()[-1] == f"launch digest: {digest}"
    res = run_cli("measure", str(out))
    assert (res.returncode, res.stdout, res.stderr) == (0, digest + "\n", "")
    res = run_cli("measure", str(out), "--vcpus", "2", "--json")
    doc = json.loads(res.stdout)
    assert doc["launch_digest"] == digest and doc["vcpus"] == 2 and doc["policy"] == "0x30000"
    assert doc["pages"] == {"normal": 480, "normal-zero": 29, "secrets": 1, "cpuid": 1, "vmsa": 2}


def test_errors_are_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    built = tmp_path / "snp.igvm"
    assert main(["igvm", "build", "--ovmf", OVMF, "--out", str(built)]) == 0
    truncated = tmp_path / "cut.igvm"
    truncated.write_bytes(built.read_bytes()[:4096])                # SYNTHETIC damage to a real build
    capsys.readouterr()
    cases = {
        ("measure", str(truncated)): f"IGVM file {truncated}: not a valid IGVM file: at offset 0x10: total_file_size",
        ("measure", str(built), "--vcpus", "2"): "vCPU(s) [1] of 2 have no VP context in the IGVM file",
        ("build", "--ovmf", "/usr/share/OVMF/OVMF_CODE_4M.fd", "--out", str(tmp_path / "x.igvm")):
            "no SEV metadata section",
        ("build", "--ovmf", OVMF, "--out", str(tmp_path / "x.igvm"), "--vcpu-type", "Bogus"):
            "vCPU type 'Bogus' unknown to sev-snp-measure",
    }
    for argv, want in cases.items():
        assert main(["igvm", *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("sevkit: error: ") and want in err, err
    assert not (tmp_path / "x.igvm").exists()
    for policy in ("-1", hex(1 << 64)):                      # argparse's own usage error: one line, exit 2
        res = run_cli("build", "--ovmf", OVMF, "--out", str(tmp_path / "x.igvm"), "--policy", policy)
        assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
        assert f"'{policy}' does not fit the 64-bit guest policy" in res.stderr
    assert not (tmp_path / "x.igvm").exists()
