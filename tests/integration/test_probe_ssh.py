"""The SSH transport for real: a private OpenSSH server on 127.0.0.1 probes this machine.

Throw-away host and user keys live in a tmp folder; root may log in by key only; the client
pins the host key through a known_hosts file (unknown keys are refused). The remote probe must
equal the local one, and cost one SSH connection running one remote command.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks._sshd import Sshd, keygen
from sevkit.cli import main
from sevkit.errors import TransportError
from sevkit.host import SshStats, collect_local, collect_ssh, grade, parse_target

pytestmark = [pytest.mark.sshd,
              pytest.mark.skipif(os.geteuid() != 0, reason="sshd root login by key needs root (euid != 0)")]




def comparable(report_json: dict[str, Any]) -> dict[str, Any]:
    """Everything but meta (origin, timestamps, collection time)."""
    return {"features": report_json["features"], "identity": report_json["identity"],
            "qemu": report_json["qemu"], "cbitpos": report_json["cbitpos"],
            "ovmf_images": report_json["ovmf_images"],   # parsed from the tails the remote collector sent
            "checks": [(c["id"], c["status"], c["message"], json.dumps(c["evidence"], sort_keys=True),
                        c.get("hint")) for c in report_json["checks"]]}


def test_ssh_probe_equals_local_probe_in_one_round_trip(sshd: Sshd) -> None:
    before = sshd.sessions()
    stats = SshStats()
    raw = collect_ssh(parse_target(sshd.target), str(sshd.key), known_hosts=str(sshd.known_hosts), stats=stats)
    remote = grade(raw).to_json()
    local = grade(collect_local()).to_json()
    assert comparable(remote) == comparable(local)
    assert remote["meta"]["origin"] == f"ssh://root@127.0.0.1:{sshd.port}"
    assert stats.connects == 1 and stats.commands == 1
    assert sshd.sessions() - before == 1          # sshd's own count of remote commands
    print(f"ssh probe: {stats.seconds:.3f} s, {stats.bytes_in} bytes, {stats.commands} remote command(s)")


def test_cli_probe_over_ssh_matches_local(sshd: Sshd, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SEVKIT_KNOWN_HOSTS", str(sshd.known_hosts))
    code_r = main(["probe", "--target", sshd.target, "--identity", str(sshd.key), "--json"])
    out_r = capsys.readouterr().out
    code_l = main(["probe", "--json"])
    out_l = capsys.readouterr().out
    assert code_r == code_l
    assert comparable(json.loads(out_r)) == comparable(json.loads(out_l))


def test_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(TransportError, match="not found in known_hosts"):
        collect_ssh(parse_target(sshd.target), str(sshd.key), known_hosts=str(empty))


def test_wrong_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other"
    keygen(other)
    with pytest.raises(TransportError, match=re.escape("ssh ssh://root@127.0.0.1")):
        collect_ssh(parse_target(sshd.target), str(other), known_hosts=str(sshd.known_hosts))
